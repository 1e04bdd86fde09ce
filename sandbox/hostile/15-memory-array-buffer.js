// expect: MemoryLimitExceeded
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    const view = new Float64Array(new ArrayBuffer(1e9));
    view[0] = 1;
  }
  return { targetUserIds: ['u1'] };
}
