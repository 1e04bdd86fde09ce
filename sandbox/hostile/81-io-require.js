// expect: ReferenceError
// message: require
// line: 5
function map(request) {
  const fs = require('fs');
  return { targetUserIds: [fs.readFileSync('/etc/hostname', 'utf8')] };
}
