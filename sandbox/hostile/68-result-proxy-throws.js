// expect: Error|InvalidOutput
// rerun: ok
function map(request) {
  if (request.body.evil === true) {
    return new Proxy({ targetUserIds: ['u1'] }, {
      get() { throw new Error('no reading allowed'); },
      ownKeys() { throw new Error('no listing allowed'); },
      getOwnPropertyDescriptor() { throw new Error('no describing allowed'); },
    });
  }
  return { targetUserIds: ['u1'] };
}
