// expect: EvalError
async function map(request) {
  const AsyncFunction = (async function () {}).constructor;
  return AsyncFunction('return { targetUserIds: ["u1"] }')();
}
