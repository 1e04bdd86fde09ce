// expect: MemoryLimitExceeded
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    new Array(1e9).fill(0);
  }
  return { targetUserIds: ['u1'] };
}
