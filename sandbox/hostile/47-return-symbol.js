// expect: InvalidOutput
function map(request) {
  return { targetUserIds: [Symbol('u1')] };
}
