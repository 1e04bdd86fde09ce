// expect: Error
// A 4 MiB message must not be copied whole into the result (or the request log).
function map(request) {
  throw new Error('x'.repeat(4 * 1024 * 1024));
}
