// expect: MemoryLimitExceeded
// rerun: ok
// Same doubling, but reading the string forces it flat into one buffer.
function map(request) {
  let s = 'x';
  if (request.body.evil === true) {
    for (;;) {
      s += s;
      s.indexOf('y');
    }
  }
  return { targetUserIds: [s.replace('x', 'u1')] };
}
