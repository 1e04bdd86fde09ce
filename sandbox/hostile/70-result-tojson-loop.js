// expect: TimeLimitExceeded|InvalidOutput
// limits: {"time_ms": 250}
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    return { targetUserIds: ['u1'], variables: { toJSON() { for (;;) {} } } };
  }
  return { targetUserIds: ['u1'] };
}
