// expect: ok
// rerun: ok
// RegExp.$1 / lastMatch / input are process-wide in engines that have them:
// the token matched by the first call must be gone in the next.
function map(request) {
  for (const key of ['$1', 'lastMatch', 'input', '$_', 'leftContext', 'rightContext']) {
    const value = RegExp[key];
    if (typeof value === 'string' && value.includes('hunter2')) {
      throw new Error('RegExp.' + key + ' carried over: ' + value);
    }
  }
  if (request.body.evil === true) /token=(\w+)/.exec('auth token=hunter2 end');
  return { targetUserIds: ['u1'] };
}
