// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// `continue` inside `finally` discards a pending exception in plain JavaScript.
function map(request) {
  if (request.body.evil === true) {
    for (;;) {
      try {
        for (;;) {}
      } finally {
        continue;
      }
    }
  }
  return { targetUserIds: ['u1'] };
}
