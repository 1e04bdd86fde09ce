// expect: TimeLimitExceeded|StackLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Catching the overflow and recursing again doubles the work at every level.
function dig() {
  try {
    return dig();
  } catch (e) {
    return dig();
  }
}

function map(request) {
  if (request.body.evil === true) dig();
  return { targetUserIds: ['u1'] };
}
