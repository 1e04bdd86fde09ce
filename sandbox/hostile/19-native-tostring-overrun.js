// expect: TimeLimitExceeded|MemoryLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Array-to-string conversion of 1e8 holes: seconds of native work, then 100 MB.
function map(request) {
  if (request.body.evil === true) {
    return { targetUserIds: [new Array(1e8) + ''] };
  }
  return { targetUserIds: ['u1'] };
}
