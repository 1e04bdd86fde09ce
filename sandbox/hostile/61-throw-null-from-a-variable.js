// expect: ThrownValue
// message: null
// The engine also throws null when it runs out of memory building an error;
// a null the mapping throws itself must still be reported as thrown.
function map(request) {
  const nothing = request.body.missing ?? null;
  throw nothing;
}
