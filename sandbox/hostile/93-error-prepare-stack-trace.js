// expect: TypeError|TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// A V8-style stack formatter hook that runs whenever any Error is created,
// including the ones the host creates or reads while reporting.
function map(request) {
  if (typeof Error.prepareStackTrace === 'function') {
    throw new Error('Error.prepareStackTrace left by an earlier call');
  }
  if (request.body.evil === true) {
    Error.prepareStackTrace = () => { for (;;) {} };
    throw new Error('formatted by the hook');
  }
  return { targetUserIds: ['u1'] };
}
