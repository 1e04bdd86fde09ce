// expect: RangeError
// message: amount out of range
// line: 7
async function map(request) {
  await null;
  await Promise.resolve();
  throw new RangeError('amount out of range');
}
