// expect: StackLimitExceeded
// rerun: ok
function map(request) {
  const node = {
    get id() { return this.id; },
  };
  if (request.body.evil === true) return { targetUserIds: [node.id] };
  return { targetUserIds: ['u1'] };
}
