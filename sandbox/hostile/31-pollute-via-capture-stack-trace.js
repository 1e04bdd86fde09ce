// expect: TypeError
// rerun: ok
// Error.captureStackTrace defines a `stack` property on any object it is given.
function map(request) {
  if (({}).stack !== undefined) throw new Error('Object.prototype.stack left by an earlier call');
  if (request.body.evil === true) Error.captureStackTrace(Object.prototype);
  return { targetUserIds: ['u1'] };
}
