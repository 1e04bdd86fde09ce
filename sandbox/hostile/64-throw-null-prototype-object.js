// expect: ThrownValue
// No toString at all: String(value) itself throws a TypeError.
function map(request) {
  const bare = Object.create(null);
  bare.reason = 'bare object';
  throw bare;
}
