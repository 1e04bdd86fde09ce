// expect: ok
// rerun: ok
// Walks everything reachable from globalThis and the hidden intrinsics (the ones
// with no global name) and fails with a list of anything that is not frozen.
function hiddenIntrinsics() {
  const proto = Object.getPrototypeOf;
  const generator = function* () {};
  const asyncGenerator = async function* () {};
  return {
    '%ArrayIteratorPrototype%': proto([][Symbol.iterator]()),
    '%IteratorPrototype%': proto(proto([][Symbol.iterator]())),
    '%MapIteratorPrototype%': proto(new Map().entries()),
    '%SetIteratorPrototype%': proto(new Set().values()),
    '%StringIteratorPrototype%': proto(''[Symbol.iterator]()),
    '%RegExpStringIteratorPrototype%': proto(/a/g[Symbol.matchAll]('a')),
    '%IteratorHelperPrototype%': proto([].values().map((x) => x)),
    '%WrapForValidIteratorPrototype%': proto(Iterator.from({ next() { return { done: true }; } })),
    '%TypedArray%': proto(Uint8Array),
    '%GeneratorFunction%': proto(generator).constructor,
    '%GeneratorPrototype%': proto(generator.prototype),
    '%AsyncFunction%': proto(async function () {}).constructor,
    '%AsyncGeneratorFunction%': proto(asyncGenerator).constructor,
    '%AsyncGeneratorPrototype%': proto(asyncGenerator.prototype),
    '%AsyncIteratorPrototype%': proto(proto(asyncGenerator.prototype)),
    '%ThrowTypeError%': Object.getOwnPropertyDescriptor(function () { 'use strict'; return arguments; }(), 'callee').get,
  };
}

function unfrozen() {
  const seen = new Set();
  const found = [];
  const queue = [['globalThis', globalThis]];
  for (const [name, value] of Object.entries(hiddenIntrinsics())) queue.push([name, value]);
  while (queue.length > 0) {
    const [path, value] = queue.shift();
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null) continue;
    if (seen.has(value)) continue;
    seen.add(value);
    if (value === map || value === unfrozen || value === hiddenIntrinsics) continue;
    if (!Object.isFrozen(value)) found.push(path);
    queue.push([path + '.[[Prototype]]', Object.getPrototypeOf(value)]);
    for (const key of Reflect.ownKeys(value)) {
      const descriptor = Object.getOwnPropertyDescriptor(value, key);
      const child = path + '.' + String(key);
      if ('value' in descriptor) queue.push([child, descriptor.value]);
      if (descriptor.get) queue.push([child + '<get>', descriptor.get]);
      if (descriptor.set) queue.push([child + '<set>', descriptor.set]);
    }
  }
  return found;
}

function map(request) {
  const found = unfrozen();
  if (found.length > 0) throw new Error('not frozen: ' + found.slice(0, 20).join(', '));
  return { targetUserIds: ['u1'] };
}
