// expect: ThrownValue|Error
// Every property read on the thrown value throws.
function map(request) {
  throw new Proxy({}, {
    get() { throw new Error('trap'); },
    getPrototypeOf() { throw new Error('trap'); },
  });
}
