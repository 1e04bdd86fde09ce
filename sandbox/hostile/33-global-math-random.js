// expect: TypeError
// rerun: ok
function map(request) {
  if (Math.random() === 0.5) throw new Error('Math.random replaced by an earlier call');
  if (request.body.evil === true) Math.random = () => 0.5;
  return { targetUserIds: ['u1'] };
}
