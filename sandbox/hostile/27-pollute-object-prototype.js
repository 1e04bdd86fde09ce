// expect: TypeError
// rerun: ok
function map(request) {
  if (({}).isAdmin !== undefined) throw new Error('Object.prototype polluted by an earlier call');
  if (request.body.evil === true) Object.prototype.isAdmin = true;
  return { targetUserIds: ['u1'] };
}
