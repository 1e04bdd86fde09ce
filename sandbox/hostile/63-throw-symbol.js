// expect: ThrownValue
// Symbols throw a TypeError when converted with '' + value.
function map(request) {
  throw Symbol('nope');
}
