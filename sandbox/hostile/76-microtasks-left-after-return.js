// expect: ok|TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Returns at once but leaves an endless microtask chain behind; it must not
// keep running, or run during a later call.
function map(request) {
  if (request.body.evil === true) {
    const spin = () => queueMicrotask(spin);
    spin();
    Promise.reject(new Error('unhandled side rejection'));
  }
  return { targetUserIds: ['u1'] };
}
