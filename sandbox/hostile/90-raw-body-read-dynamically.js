// expect: ok
// rerun: ok
// A runtime may skip marshalling the raw text to mappings that never name that
// field, but a mapping that builds the name at run time must still see it.
// (This source must not spell the field's name anywhere, comments included.)
function map(request) {
  const key = ['raw', 'Body'].join('');
  if (typeof request[key] !== 'string' || !request[key].includes('"evil"')) {
    throw new Error('request.' + key + ' is ' + typeof request[key]);
  }
  return { targetUserIds: ['u1'] };
}
