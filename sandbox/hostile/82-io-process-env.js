// expect: ReferenceError
// message: process
function map(request) {
  return { targetUserIds: [process.env.FLOWHOOK_ADMIN_TOKEN] };
}
