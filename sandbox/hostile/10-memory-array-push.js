// expect: MemoryLimitExceeded
// message: (?i)memory
// limits: {"memory_bytes": 8388608}
// rerun: ok
function map(request) {
  const hoard = [];
  if (request.body.evil === true) {
    for (let i = 0; ; i++) hoard.push({ i, label: 'item-' + i });
  }
  return { targetUserIds: ['u1'] };
}
