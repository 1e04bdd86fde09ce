// expect: TypeError|TimeLimitExceeded|ReferenceError
// limits: {"time_ms": 250}
// rerun: ok
// Blocks without using CPU: a CPU-time limit alone would never fire. The
// runtime may refuse to block (TypeError) or remove the globals.
function map(request) {
  if (request.body.evil === true) {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    Atomics.wait(cell, 0, 0);
  }
  return { targetUserIds: ['u1'] };
}
