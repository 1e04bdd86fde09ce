// expect: TimeLimitExceeded|ThrownValue
// limits: {"time_ms": 250}
// rerun: ok
// Turning the thrown value into a message must not run this loop unbounded.
function map(request) {
  if (request.body.evil === true) {
    throw {
      toString() { for (;;) {} },
      valueOf() { for (;;) {} },
      [Symbol.toPrimitive]() { for (;;) {} },
    };
  }
  return { targetUserIds: ['u1'] };
}
