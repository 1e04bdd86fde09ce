// expect: TimeLimitExceeded
// limits: {"time_ms": 250}
// rerun: ok
// Each `await` is a separate job: a budget that restarts per job never runs out.
async function map(request) {
  if (request.body.evil === true) {
    for (;;) await null;
  }
  return { targetUserIds: ['u1'] };
}
