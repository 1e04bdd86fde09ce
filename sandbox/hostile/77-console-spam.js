// expect: ok
// limits: {"max_log_lines": 10}
// logs-max: 11
// 100,000 lines: only the first few are kept (plus, at most, a truncation notice).
function map(request) {
  for (let i = 0; i < 100000; i++) console.log('line', i);
  return { targetUserIds: ['u1'] };
}
