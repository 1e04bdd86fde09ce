// expect: spec-error
// message: closes a bracket that the source never opened
// line: 8
// A whole map(), then a } of one too many and a function left open for the wrapper's own }.
function map(request) {
  return { targetUserIds: ['u' + calls] };
}
} let calls = 0; while (true) {} function reopened() {
