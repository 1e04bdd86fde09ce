// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Catches whatever the interrupt throws and keeps looping.
function map(request) {
  if (request.body.evil === true) {
    for (;;) {
      try {
        for (;;) {}
      } catch (e) {
        // swallow and go round again
      }
    }
  }
  return { targetUserIds: ['u1'] };
}
