// expect: OutputTooLarge
// Over the size limit without any single large value.
function map(request) {
  const variables = {};
  for (let i = 0; i < 200000; i++) variables['k' + i] = i;
  return { targetUserIds: ['u1'], variables };
}
