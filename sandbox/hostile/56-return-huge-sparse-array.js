// expect: InvalidOutput|OutputTooLarge|MemoryLimitExceeded|TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Tiny in memory, but 4 billion holes long: a converter that walks `length`
// must not run for hours or allocate gigabytes on the host.
function map(request) {
  if (request.body.evil === true) {
    const holes = [];
    holes.length = 2 ** 32 - 1;
    return { targetUserIds: ['u1'], variables: { holes } };
  }
  return { targetUserIds: ['u1'] };
}
