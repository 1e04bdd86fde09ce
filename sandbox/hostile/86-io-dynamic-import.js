// expect: ReferenceError|TypeError|SyntaxError|Error
// No module loader: importing anything fails, it never reads a file.
async function map(request) {
  const fs = await import('fs');
  return { targetUserIds: [String(fs)] };
}
