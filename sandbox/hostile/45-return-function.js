// expect: InvalidOutput
function map(request) {
  return () => ({ targetUserIds: ['u1'] });
}
