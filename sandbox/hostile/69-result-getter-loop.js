// expect: TimeLimitExceeded|InvalidOutput
// limits: {"time_ms": 250}
// rerun: ok
// The loop starts only when the host reads the result.
function map(request) {
  if (request.body.evil === true) {
    return { get targetUserIds() { for (;;) {} } };
  }
  return { targetUserIds: ['u1'] };
}
