// expect: InvalidOutput
function map(request) {
  return { targetUserIds: ['u1'], variables: { ratio: 0 / 0 } };
}
