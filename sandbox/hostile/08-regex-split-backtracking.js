// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    ('a'.repeat(40) + 'b').split(/(a|aa)+$/);
  }
  return { targetUserIds: ['u1'] };
}
