// expect: EvalError
async function map(request) {
  const AsyncGeneratorFunction = Object.getPrototypeOf(async function* () {}).constructor;
  const step = await new AsyncGeneratorFunction('yield { targetUserIds: ["u1"] }')().next();
  return step.value;
}
