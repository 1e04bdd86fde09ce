// expect: MemoryLimitExceeded|RangeError|InternalError
// message: (?i)memory|string|length
// rerun: ok
// QuickJS builds `s += s` as a rope, so this can end on the engine's maximum
// string length before it ends on the memory limit; both are clean failures.
function map(request) {
  let s = 'x';
  if (request.body.evil === true) {
    for (;;) s += s;
  }
  return { targetUserIds: [s.replace('x', 'u1')] };
}
