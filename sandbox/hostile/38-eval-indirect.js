// expect: EvalError
// Indirect eval runs in the global scope, outside strict mode.
function map(request) {
  const globalEval = (0, eval);
  return globalEval('this').marker;
}
