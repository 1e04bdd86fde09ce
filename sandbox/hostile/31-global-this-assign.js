// expect: TypeError
// rerun: ok
function map(request) {
  if (typeof globalThis.stash !== 'undefined') throw new Error('globalThis.stash left by an earlier call');
  if (request.body.evil === true) globalThis.stash = { secret: 'from the previous request' };
  return { targetUserIds: ['u1'] };
}
