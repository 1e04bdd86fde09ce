// expect: ThrownValue
// message: customer not found
function map(request) {
  throw 'customer not found';
}
