// expect: StackLimitExceeded
// message: (?i)stack
// rerun: ok
function down(n) {
  return down(n + 1) + 1;
}

function map(request) {
  if (request.body.evil === true) down(0);
  return { targetUserIds: ['u1'] };
}
