// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// The loop runs inside a callback of a native builtin.
function map(request) {
  const ids = ['u3', 'u2', 'u1'];
  if (request.body.evil === true) {
    ids.sort(() => { for (;;) {} });
  }
  return { targetUserIds: [ids[2]] };
}
