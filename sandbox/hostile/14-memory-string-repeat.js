// expect: MemoryLimitExceeded
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    'x'.repeat(2 ** 28);
  }
  return { targetUserIds: ['u1'] };
}
