// expect: InvalidOutput
function map(request) {
  return { targetUserIds: ['u1'], variables: { amount: 12345678901234567890n } };
}
