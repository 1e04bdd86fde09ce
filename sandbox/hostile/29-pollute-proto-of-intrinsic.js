// expect: TypeError
// rerun: ok
// Swaps the prototype of Array.prototype through the __proto__ setter.
function map(request) {
  if ([].isAdmin !== undefined) throw new Error('Array.prototype chain changed by an earlier call');
  if (request.body.evil === true) Array.prototype.__proto__ = { isAdmin: true };
  return { targetUserIds: ['u1'] };
}
