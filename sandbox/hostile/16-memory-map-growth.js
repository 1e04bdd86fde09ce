// expect: MemoryLimitExceeded
// limits: {"memory_bytes": 8388608}
// rerun: ok
function map(request) {
  const cache = new Map();
  if (request.body.evil === true) {
    for (let i = 0; ; i++) cache.set('key-' + i, 'v'.repeat(1000) + i);
  }
  return { targetUserIds: ['u1'] };
}
