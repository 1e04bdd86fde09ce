// expect: ok|TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Formatting the argument runs user code in whichever way the shim chooses.
function map(request) {
  if (request.body.evil === true) {
    console.log({
      get field() { for (;;) {} },
      toString() { for (;;) {} },
      toJSON() { for (;;) {} },
      [Symbol.toPrimitive]() { for (;;) {} },
    });
  }
  return { targetUserIds: ['u1'] };
}
