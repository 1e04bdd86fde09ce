// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    ('x'.repeat(45) + '!').match(/^(x+x+)+y$/);
  }
  return { targetUserIds: ['u1'] };
}
