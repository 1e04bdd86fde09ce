// expect: spec-error|Error
// message: top-level boom
const config = JSON.parse('{"ok": true}');
if (config.ok) throw new Error('top-level boom');

function map(request) {
  return { targetUserIds: ['u1'] };
}
