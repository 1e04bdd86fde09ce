// expect: TimeLimitExceeded|InvalidOutput
// limits: {"time_ms": 250}
// rerun: ok
// Awaiting a thenable calls its `then`, which never returns.
function map(request) {
  if (request.body.evil === true) {
    return { then(resolve) { for (;;) {} } };
  }
  return { targetUserIds: ['u1'] };
}
