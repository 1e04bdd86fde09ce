// expect: InvalidOutput
// message: nested deeper than 64 levels
// rerun: ok
// Deeper than the host's JSON parser goes (1,024 levels), yet shallow enough
// for the engine to write: its RecursionError used to kill the sandbox slot.
function map(request) {
  if (request.body.evil === true) {
    let nested = [];
    for (let i = 0; i < 1100; i++) nested = [nested];
    return { targetUserIds: ['u1'], variables: { nested } };
  }
  return { targetUserIds: ['u1'] };
}
