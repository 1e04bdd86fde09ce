// expect: spec-error
// message: ^SyntaxError
// line: 5
// Closes the wrapper function and goes on as the same expression.
}, (Array.prototype.injected = 'yes'), function () {
function map(request) {
  return { targetUserIds: [[].injected === 'yes' ? 'polluted' : 'u1'] };
}
