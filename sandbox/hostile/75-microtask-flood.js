// expect: TimeLimitExceeded|MemoryLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Every microtask queues two more; the promise resolves only after 1e9 of them.
function map(request) {
  if (request.body.evil === true) {
    return new Promise((resolve) => {
      let ticks = 0;
      const tick = () => {
        if (++ticks > 1e9) {
          resolve({ targetUserIds: ['u1'] });
          return;
        }
        queueMicrotask(tick);
        queueMicrotask(tick);
      };
      tick();
    });
  }
  return { targetUserIds: ['u1'] };
}
