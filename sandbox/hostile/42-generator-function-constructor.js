// expect: EvalError
function map(request) {
  const GeneratorFunction = Object.getPrototypeOf(function* () {}).constructor;
  return GeneratorFunction('yield { targetUserIds: ["u1"] }')().next().value;
}
