// expect: ThrownValue
// message: null
function map(request) {
  throw null;
}
