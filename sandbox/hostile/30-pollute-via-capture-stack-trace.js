// expect: TypeError|ok
// rerun: ok
// Error.captureStackTrace defines a `stack` property on any object it is given.
// Refusing (TypeError) or silently doing nothing are both fine; a `stack` on
// Object.prototype, in this call or a later one, is not.
function map(request) {
  if (({}).stack !== undefined) throw new Error('Object.prototype.stack left by an earlier call');
  if (request.body.evil === true) {
    Error.captureStackTrace(Object.prototype);
    if (({}).stack !== undefined) throw new Error('Error.captureStackTrace wrote to Object.prototype');
  }
  return { targetUserIds: ['u1'] };
}
