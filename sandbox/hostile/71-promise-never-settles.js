// expect: UnsettledPromise
// rerun: ok
function map(request) {
  if (request.body.evil === true) return new Promise(() => {});
  return Promise.resolve({ targetUserIds: ['u1'] });
}
