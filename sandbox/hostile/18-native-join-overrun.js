// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// One native call that runs for seconds without reaching an interrupt check.
function map(request) {
  if (request.body.evil === true) {
    new Array(1e8).join('');
  }
  return { targetUserIds: ['u1'] };
}
