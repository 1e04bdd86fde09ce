// expect: TypeError
// rerun: ok
function map(request) {
  const ids = ['u1'].map((id) => id);
  if (ids[0] !== 'u1') throw new Error('Array.prototype.map replaced by an earlier call');
  if (request.body.evil === true) {
    Array.prototype.map = function () { return ['attacker']; };
  }
  return { targetUserIds: ids };
}
