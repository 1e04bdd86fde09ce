// expect: ok
// rerun: ok
// }); in comments, strings, template literals and regular expressions is no
// bracket at all: such a source compiles and maps as written. });
/* }); let calls = 0; (function () { */
const closers = ['});', `}); ${'});'}`, /\}\);/.source];
function map(request) {
  const exact = closers[0] === '});' && closers[1] === '}); });' && closers[2] === '\\}\\);';
  return { targetUserIds: [exact ? 'u1' : 'mangled'] };
}
