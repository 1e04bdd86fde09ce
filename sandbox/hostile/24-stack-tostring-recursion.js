// expect: StackLimitExceeded
// rerun: ok
function map(request) {
  const user = {
    toString() { return 'user:' + this; },
  };
  if (request.body.evil === true) return { targetUserIds: [String(user)] };
  return { targetUserIds: ['u1'] };
}
