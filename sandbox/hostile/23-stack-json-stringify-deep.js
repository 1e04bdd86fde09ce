// expect: StackLimitExceeded
// rerun: ok
// Built iteratively, so only the native JSON.stringify recursion overflows.
function map(request) {
  if (request.body.evil === true) {
    let nested = {};
    for (let i = 0; i < 100000; i++) nested = { nested };
    JSON.stringify(nested);
  }
  return { targetUserIds: ['u1'] };
}
