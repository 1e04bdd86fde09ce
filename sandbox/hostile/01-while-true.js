// expect: TimeLimitExceeded
// message: (?i)time
// limits: {"time_ms": 250}
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    while (true) {}
  }
  return { targetUserIds: ['u1'] };
}
