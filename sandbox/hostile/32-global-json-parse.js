// expect: TypeError
// rerun: ok
function map(request) {
  if (JSON.parse('"u1"') !== 'u1') throw new Error('JSON.parse replaced by an earlier call');
  if (request.body.evil === true) JSON.parse = () => 'attacker';
  return { targetUserIds: ['u1'] };
}
