// expect: EvalError
// line: 4
function map(request) {
  return eval('({ targetUserIds: ["u1"] })');
}
