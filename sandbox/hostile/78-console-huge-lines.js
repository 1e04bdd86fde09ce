// expect: ok
// Twenty 1 MiB lines: the captured log must be capped in bytes, not only lines.
function map(request) {
  const line = 'x'.repeat(1024 * 1024);
  for (let i = 0; i < 20; i++) console.log(line);
  return { targetUserIds: ['u1'] };
}
