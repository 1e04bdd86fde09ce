// expect: spec-error|TypeError
// At the top level `this` is the global object in a script and undefined in a
// wrapper function; either way, writing through it must fail.
this.injected = true;

function map(request) {
  return { targetUserIds: ['u1'] };
}
