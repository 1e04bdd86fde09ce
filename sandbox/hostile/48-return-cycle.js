// expect: InvalidOutput
function map(request) {
  const output = { targetUserIds: ['u1'], variables: {} };
  output.variables.self = output;
  return output;
}
