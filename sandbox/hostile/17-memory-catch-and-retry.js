// expect: MemoryLimitExceeded|TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Catches the out-of-memory error and allocates again. Each failed attempt is
// one long native operation, so the engine's interrupt check (counted in
// bytecode steps) starves: unchecked, this overruns a 250 ms limit by seconds.
function map(request) {
  const keep = [];
  if (request.body.evil === true) {
    for (;;) {
      try {
        keep.push(new Array(3e5).fill(1));
      } catch (e) {
        // ignore and try again
      }
    }
  }
  return { targetUserIds: ['u1'] };
}
