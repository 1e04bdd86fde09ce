// expect: EvalError
// The classic escape to the sloppy-mode global object.
function map(request) {
  const global = Function('return this')();
  return { targetUserIds: [String(global)] };
}
