// expect: TypeError
// rerun: ok
// Replacing console.log would let one call read what a later call logs.
function map(request) {
  if (console.log.name === 'spy') throw new Error('console.log replaced by an earlier call');
  if (request.body.evil === true) console.log = function spy() {};
  return { targetUserIds: ['u1'] };
}
