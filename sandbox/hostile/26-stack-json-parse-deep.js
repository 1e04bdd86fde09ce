// expect: StackLimitExceeded|SyntaxError
// rerun: ok
function map(request) {
  if (request.body.evil === true) JSON.parse('['.repeat(1e6) + ']'.repeat(1e6));
  return { targetUserIds: ['u1'] };
}
