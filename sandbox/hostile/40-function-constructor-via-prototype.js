// expect: EvalError
function map(request) {
  const make = (function () {}).constructor;
  return make('return { targetUserIds: ["u1"] }')();
}
