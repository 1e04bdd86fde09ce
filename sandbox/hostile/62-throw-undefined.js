// expect: ThrownValue
// message: undefined
function map(request) {
  throw undefined;
}
