// expect: TimeLimitExceeded|Error
// limits: {"time_ms": 250}
// rerun: ok
// A real Error whose name, message and stack are getters that never return.
function map(request) {
  if (request.body.evil === true) {
    const error = new Error('placeholder');
    for (const key of ['name', 'message', 'stack']) {
      Object.defineProperty(error, key, { get() { for (;;) {} } });
    }
    throw error;
  }
  return { targetUserIds: ['u1'] };
}
