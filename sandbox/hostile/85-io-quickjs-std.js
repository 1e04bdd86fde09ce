// expect: ReferenceError
// message: \bstd\b
// The qjs shell's std module, had the host exposed it.
function map(request) {
  return { targetUserIds: [std.loadFile('/etc/passwd')] };
}
