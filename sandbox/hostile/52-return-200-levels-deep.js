// expect: InvalidOutput
// message: (?i)deep|depth|nest
function map(request) {
  let tree = { leaf: true };
  for (let i = 0; i < 200; i++) tree = { child: tree };
  return { targetUserIds: ['u1'], variables: { tree } };
}
