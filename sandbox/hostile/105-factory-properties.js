// expect: ok
// rerun: ok
// The factory that re-runs the top level on each call is named `anonymous` in
// the source; a property set on it (or its prototype) would outlive the call.
function map(request) {
  const factory = typeof anonymous === 'function' ? anonymous : function () {};
  try { factory.calls = (factory.calls || 0) + 1; } catch (e) { /* frozen */ }
  try { factory.prototype.calls = 1; } catch (e) { /* frozen */ }
  const kept = factory.calls !== undefined || (factory.prototype && factory.prototype.calls !== undefined);
  return { targetUserIds: [kept ? 'leaked' : 'u1'] };
}
