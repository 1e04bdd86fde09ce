// expect: InvalidOutput|StackLimitExceeded
// rerun: ok
// Deep enough to overflow any recursive converter on the host side.
function map(request) {
  if (request.body.evil === true) {
    let tree = { leaf: true };
    for (let i = 0; i < 100000; i++) tree = { child: tree };
    return { targetUserIds: ['u1'], variables: { tree } };
  }
  return { targetUserIds: ['u1'] };
}
