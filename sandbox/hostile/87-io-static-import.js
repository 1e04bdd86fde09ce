// expect: spec-error
import { readFileSync } from 'fs';

function map(request) {
  return { targetUserIds: [readFileSync('/etc/hostname', 'utf8')] };
}
