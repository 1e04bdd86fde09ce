// expect: spec-error
// line: 5
// A missing closing bracket, reported at the user's line, not a wrapper's.
function map(request) {
  const ids = [request.body.user;
  return { targetUserIds: ids };
}
