// expect: spec-error
// message: ^SyntaxError
// A U+2028 LINE SEPARATOR ends a // comment in JavaScript (though not for a
// checker that looks for newlines only): the rest of that line is code.
function map(request) {
  return { targetUserIds: ['u1'] };
} // a comment  }); let calls = 0; (function () {
