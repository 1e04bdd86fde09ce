// expect: StackLimitExceeded
// rerun: ok
function map(request) {
  const mirror = new Proxy({}, {
    get(target, key, receiver) { return receiver[key]; },
  });
  if (request.body.evil === true) return { targetUserIds: [mirror.id] };
  return { targetUserIds: ['u1'] };
}
