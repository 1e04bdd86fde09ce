// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Shallow recursion that never overflows the stack but never ends either.
function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

function map(request) {
  if (request.body.evil === true) {
    fib(80);
  }
  return { targetUserIds: ['u1'] };
}
