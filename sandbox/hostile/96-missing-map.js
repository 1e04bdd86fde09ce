// expect: spec-error
// message: \bmap\b
function transform(request) {
  return { targetUserIds: ['u1'] };
}
