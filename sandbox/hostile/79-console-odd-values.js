// expect: ok
// Values that break naive formatting ('' + value, JSON.stringify) still log.
function map(request) {
  const cycle = { name: 'cycle' };
  cycle.self = cycle;
  console.log(Symbol('s'), 10n, cycle, Object.create(null), [undefined, NaN, -0], () => 1);
  console.info(new Map([[1, 2]]), new Error('logged, not thrown'));
  console.warn();
  console.error(null, undefined);
  return { targetUserIds: ['u1'] };
}
