// expect: TimeLimitExceeded|InvalidOutput
// limits: {"time_ms": 250}
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    return new Proxy({ targetUserIds: ['u1'] }, { ownKeys() { for (;;) {} } });
  }
  return { targetUserIds: ['u1'] };
}
