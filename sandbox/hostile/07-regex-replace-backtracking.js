// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    ('a'.repeat(40) + 'b').replace(/(a+)+$/, 'x');
  }
  return { targetUserIds: ['u1'] };
}
