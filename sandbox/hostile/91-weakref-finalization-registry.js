// expect: ok|ReferenceError
// rerun: ok
// A finalizer is a callback that could outlive the call; it must never run in a
// later one (it would loop there). The runtime may also remove both globals.
function map(request) {
  if (request.body.evil === true) {
    const registry = new FinalizationRegistry(() => { for (;;) {} });
    for (let i = 0; i < 1000; i++) registry.register({ i }, i);
    const ref = new WeakRef({ id: 'u1' });
    ref.deref();
  }
  return { targetUserIds: ['u1'] };
}
