// expect: ReferenceError
// message: setTimeout
// No timers: nothing may be scheduled to outlive the call.
function map(request) {
  setTimeout(() => { for (;;) {} }, 0);
  return { targetUserIds: ['u1'] };
}
