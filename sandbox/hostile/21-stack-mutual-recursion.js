// expect: StackLimitExceeded
// rerun: ok
function ping(n) { return pong(n + 1); }
function pong(n) { return ping(n + 1); }

function map(request) {
  if (request.body.evil === true) ping(0);
  return { targetUserIds: ['u1'] };
}
