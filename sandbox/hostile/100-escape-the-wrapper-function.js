// expect: spec-error
// message: ^SyntaxError
// line: 8
// QuickJS's Function constructor pastes a body between "(function anonymous(\n) {\n"
// and "\n})": a source that closed that function ran the rest at global scope,
// once, before the lockdown, so a counter and the previous request's body
// outlived each call and the Function constructor it kept evaluated strings.
}); let state = { calls: 0, last: null }; const RealFunction = Function; (function () {
function map(request) {
  state.calls++;
  const previous = state.last;
  state.last = request.body;
  return { targetUserIds: ['u' + state.calls], variables: { previous, six: RealFunction('return 6')() } };
}
