// expect: EvalError
// Reaches Function through a chain of constructors and builds it via Reflect.
function map(request) {
  const F = ({}).constructor.constructor;
  return Reflect.construct(F, ['return { targetUserIds: ["u1"] }'])();
}
