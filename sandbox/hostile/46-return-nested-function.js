// expect: InvalidOutput
// JSON.stringify would silently drop the function; the contract rejects it.
function map(request) {
  return { targetUserIds: ['u1'], variables: { onDone() { return 1; } } };
}
