// expect: OutputTooLarge
function map(request) {
  return { targetUserIds: ['u1'], variables: { blob: 'x'.repeat(2 * 1024 * 1024) } };
}
