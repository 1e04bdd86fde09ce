// expect: ok
// Lists the global names: anything beyond the ECMAScript (and QuickJS-ng)
// built-ins and `console` is a host object the mapping should not see.
const BUILT_INS = new Set([
  'Object', 'Function', 'Array', 'Number', 'parseFloat', 'parseInt', 'Infinity', 'NaN', 'undefined',
  'Boolean', 'String', 'Symbol', 'Date', 'Promise', 'RegExp', 'Error', 'AggregateError', 'EvalError',
  'RangeError', 'ReferenceError', 'SyntaxError', 'TypeError', 'URIError', 'InternalError',
  'SuppressedError', 'globalThis', 'JSON', 'Math', 'Intl', 'ArrayBuffer', 'SharedArrayBuffer', 'Atomics',
  'Uint8Array', 'Int8Array', 'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float16Array',
  'Float32Array', 'Float64Array', 'Uint8ClampedArray', 'BigUint64Array', 'BigInt64Array', 'DataView',
  'Map', 'BigInt', 'Set', 'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry', 'Proxy', 'Reflect',
  'decodeURI', 'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'escape', 'unescape', 'eval',
  'isFinite', 'isNaN', 'Iterator', 'DisposableStack', 'AsyncDisposableStack', 'DOMException',
  'queueMicrotask', 'btoa', 'atob', 'performance', 'console', 'map',
  'flowhook', // the runtime's documented mapping helpers
]);

function map(request) {
  const extra = Object.getOwnPropertyNames(globalThis).filter((name) => !BUILT_INS.has(name));
  if (extra.length > 0) throw new Error('host globals visible: ' + extra.join(', '));
  return { targetUserIds: ['u1'] };
}
