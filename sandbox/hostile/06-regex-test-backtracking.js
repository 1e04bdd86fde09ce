// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Catastrophic backtracking: 2^40 ways to split the a's before failing on 'b'.
function map(request) {
  if (request.body.evil === true) {
    /(a+)+$/.test('a'.repeat(40) + 'b');
  }
  return { targetUserIds: ['u1'] };
}
