// expect: TypeError
// message: rejected on purpose
function map(request) {
  return Promise.reject(new TypeError('rejected on purpose'));
}
