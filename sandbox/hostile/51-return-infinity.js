// expect: InvalidOutput
function map(request) {
  return { targetUserIds: ['u1'], variables: { limit: -1 / 0 } };
}
