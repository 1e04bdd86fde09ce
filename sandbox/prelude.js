// flowhook sandbox prelude: evaluated into every fresh QuickJS context before
// any user code. Its completion value is `install(body, config)`, which the
// host calls once per context to compile a mapping: it returns the `host`
// function the host drives, or a JSON-described compile error. Nothing here is reachable from user code except the
// frozen `console` and `flowhook` globals.
(function () {
  "use strict";
  const OriginalFunction = Function;
  const functionToString = Function.prototype.toString;
  // Parses text as strict eval code in a scope of its own (a direct eval, so
  // that the text's declarations stay local); see `parseBody`.
  const strictEval = OriginalFunction('"use strict"; return eval(arguments[0]);');
  const ErrorCtor = Error;
  const PromiseCtor = Promise;
  const { stringify, parse } = JSON;
  const { freeze, getPrototypeOf, getOwnPropertyDescriptors, defineProperty, keys } = Object;
  const ownKeys = Reflect.ownKeys;
  const apply = Reflect.apply;
  const isArray = Array.isArray;
  const StringCtor = String;
  const arrayPush = Array.prototype.push;
  const arrayJoin = Array.prototype.join;
  const stringSlice = String.prototype.slice;
  const stringSplit = String.prototype.split;

  // ---- console: captured lines, capped, returned with each result --------
  let logs = null; // allocated by the first console call of an invocation
  let dropped = 0;
  let maxLogLines = 100;
  let maxLogChars = 2000;

  // An Error has no enumerable own properties, so as JSON it is "{}". Show it
  // as browsers do in essence, "TypeError: message"; its stack is left out
  // because it names wrapper lines, not the user's.
  function errorText(error) {
    try {
      const name = safeString(error.name, "Error");
      const message = safeString(error.message, "");
      if (message === "") return name;
      return name === "" ? message : name + ": " + message;
    } catch (e) {
      return "[unprintable Error]";
    }
  }

  function errorsAsText(key, value) {
    return value instanceof ErrorCtor ? errorText(value) : value;
  }

  function formatArg(value) {
    if (typeof value === "string") return value;
    try {
      if (value instanceof ErrorCtor) return errorText(value);
      const text = stringify(value, errorsAsText);
      if (text !== undefined) return text;
    } catch (e) {
      // fall through: cycles, BigInt, a Proxy whose trap throws
    }
    try {
      return StringCtor(value);
    } catch (e) {
      return "[unprintable]";
    }
  }

  function logger(level) {
    return function () {
      if (logs === null) logs = [];
      if (logs.length >= maxLogLines) {
        dropped++;
        return;
      }
      const parts = [];
      for (let i = 0; i < arguments.length; i++) apply(arrayPush, parts, [formatArg(arguments[i])]);
      let message = apply(arrayJoin, parts, [" "]);
      message = clip(message, maxLogChars);
      apply(arrayPush, logs, [{ level, message }]);
    };
  }

  const consoleShim = {
    log: logger("log"),
    info: logger("info"),
    warn: logger("warn"),
    error: logger("error"),
    debug: logger("debug"),
  };

  // ---- helpers worth having in mappings ------------------------------------
  const helpers = {
    /** Read a dotted path ("data.object.id", "items.0.sku") with a fallback. */
    get(object, path, fallback) {
      let current = object;
      const segments = StringCtor(path).split(".");
      for (let i = 0; i < segments.length; i++) {
        if (current === null || current === undefined) return fallback;
        current = current[segments[i]];
      }
      return current === undefined ? fallback : current;
    },
    /** Wrap a single value in an array; null/undefined become []. */
    toArray(value) {
      if (value === null || value === undefined) return [];
      return isArray(value) ? value : [value];
    },
    /** Copy of an object without null/undefined properties. */
    compact(object) {
      const out = {};
      for (const key of keys(object)) {
        const value = object[key];
        if (value !== null && value !== undefined) out[key] = value;
      }
      return out;
    },
    /** Copy of an object with only the named properties. */
    pick(object, names) {
      const out = {};
      for (const name of names) if (object != null && name in object) out[name] = object[name];
      return out;
    },
  };

  // ---- lockdown --------------------------------------------------------------
  function refuseCodeGeneration() {
    throw new EvalError("code generation from strings is disabled in mappings");
  }

  function tameConstructor(prototype) {
    // Function, AsyncFunction, GeneratorFunction, AsyncGeneratorFunction all
    // compile strings; replace the constructor each prototype points at.
    defineProperty(prototype, "constructor", {
      value: refuseCodeGeneration,
      writable: false,
      enumerable: false,
      configurable: false,
    });
  }

  // Assigning to a property that a frozen prototype defines fails ("override
  // mistake"), which breaks ordinary code such as `this.name = "MyError"`.
  // Turn those data properties into accessors that define an own property.
  function enableOverride(object, name) {
    const descriptor = Object.getOwnPropertyDescriptor(object, name);
    if (!descriptor || !("value" in descriptor) || !descriptor.configurable) return;
    const value = descriptor.value;
    defineProperty(object, name, {
      get() {
        return value;
      },
      set(newValue) {
        if (this === object) throw new TypeError("Cannot assign to read only property '" + StringCtor(name) + "'");
        defineProperty(this, name, { value: newValue, writable: true, enumerable: true, configurable: true });
      },
      enumerable: descriptor.enumerable,
      configurable: false,
    });
  }

  function harden(root) {
    const seen = new Set();
    const pending = [root];
    while (pending.length > 0) {
      const value = pending.pop();
      if ((typeof value !== "object" && typeof value !== "function") || value === null || seen.has(value)) continue;
      seen.add(value);
      freeze(value);
      const proto = getPrototypeOf(value);
      if (proto !== null) pending.push(proto);
      const descriptors = getOwnPropertyDescriptors(value);
      for (const key of ownKeys(descriptors)) {
        const d = descriptors[key];
        if ("value" in d) pending.push(d.value);
        if (d.get) pending.push(d.get);
        if (d.set) pending.push(d.set);
      }
    }
  }

  function hiddenIntrinsics() {
    function* generator() {}
    async function* asyncGenerator() {}
    async function asyncFunction() {}
    const found = [
      getPrototypeOf(generator),
      getPrototypeOf(asyncGenerator),
      getPrototypeOf(asyncFunction),
      generator(),
      asyncGenerator(),
      [][Symbol.iterator](),
      new Map()[Symbol.iterator](),
      new Set()[Symbol.iterator](),
      ""[Symbol.iterator](),
      /x/[Symbol.matchAll](""),
      getPrototypeOf(Int8Array),
      (function () {
        return arguments;
      })(),
    ];
    if (typeof Iterator === "function") {
      found.push(Iterator.from({ next() { return { done: true }; } }));
      found.push([].values().map((x) => x));
    }
    return found;
  }

  // A generator's throw() is the one way to throw a value of the mapping's
  // choosing without a `throw` statement (which the host looks for in the
  // source); it notes that it ran, so that a null it throws is not taken for
  // the engine's out-of-memory null.
  function flagGeneratorThrow(generatorPrototype) {
    const generatorThrow = generatorPrototype.throw;
    defineProperty(generatorPrototype, "throw", {
      value: {
        throw(value) {
          throwsValues = true;
          return apply(generatorThrow, this, [value]);
        },
      }.throw,
      writable: true,
      enumerable: false,
      configurable: true,
    });
  }

  function lockdown(synchronous) {
    for (const name of ["SharedArrayBuffer", "Atomics", "WeakRef", "FinalizationRegistry", "performance"]) {
      delete globalThis[name];
    }
    defineProperty(globalThis, "eval", { value: refuseCodeGeneration, writable: false, configurable: false });
    // V8-style hooks backed by engine state that freezing would not protect:
    // a prepareStackTrace set by one call would run in every later one.
    defineProperty(Error, "prepareStackTrace", { value: undefined, writable: false, configurable: false });
    defineProperty(Error, "stackTraceLimit", { value: Error.stackTraceLimit, writable: false, configurable: false });
    if (synchronous) {
      // The host skips the job queue for sources that use no async syntax;
      // without these a call has no way left to queue a job that would run later.
      for (const name of ["Promise", "queueMicrotask", "AsyncDisposableStack"]) delete globalThis[name];
      delete Array.fromAsync;
    }
    // Legacy RegExp statics (RegExp.$1, lastMatch, …) would carry the previous
    // call's match into the next one.
    for (const name of ownKeys(RegExp)) {
      if (typeof name === "string" && (name[0] === "$" || /^(input|last|left|right)/.test(name))) {
        try {
          delete RegExp[name];
        } catch (e) {
          // non-configurable: harden() freezes it below
        }
      }
    }
    const intrinsics = hiddenIntrinsics();
    flagGeneratorThrow(intrinsics[0].prototype);
    tameConstructor(OriginalFunction.prototype);
    tameConstructor(intrinsics[0]);
    tameConstructor(intrinsics[1]);
    tameConstructor(intrinsics[2]);
    defineProperty(globalThis, "Function", { value: refuseCodeGeneration, writable: false, configurable: false });
    for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable", "toLocaleString"]) {
      enableOverride(Object.prototype, name);
    }
    for (const ErrorType of [Error, TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError, AggregateError]) {
      for (const name of ["name", "message", "constructor", "toString"]) enableOverride(ErrorType.prototype, name);
    }
    for (const name of ["constructor", "toString"]) enableOverride(Array.prototype, name);
    defineProperty(globalThis, "console", { value: consoleShim, writable: false, enumerable: false, configurable: false });
    defineProperty(globalThis, "flowhook", { value: helpers, writable: false, enumerable: false, configurable: false });
    harden(globalThis);
    for (const intrinsic of intrinsics) harden(intrinsic);
  }

  // ---- result checking -------------------------------------------------------
  // JSON.stringify with this replacer rejects what JSON would silently drop or
  // mangle. Nesting depth is checked by the host, which sees the text.
  class OutputError extends Error {}
  class OutputTooLarge extends Error {}

  function checkValue(key, value) {
    switch (typeof value) {
      case "number":
        if (value !== value || value === Infinity || value === -Infinity) {
          throw new OutputError("the result contains the non-finite number " + StringCtor(value) + " at " + describeKey(key));
        }
        return value;
      case "function":
      case "symbol":
      case "bigint":
        throw new OutputError("the result contains a " + typeof value + " at " + describeKey(key));
      default:
        return value;
    }
  }

  function describeKey(key) {
    return key === "" ? "the top level" : "key " + stringify(StringCtor(key));
  }

  // ---- errors ----------------------------------------------------------------
  function safeString(value, fallback) {
    try {
      return typeof value === "string" ? value : fallback;
    } catch (e) {
      return fallback;
    }
  }

  function clip(text, limit) {
    return text.length > limit ? apply(stringSlice, text, [0, limit]) + "…" : text;
  }

  let memoryExceeded = { type: "MemoryLimitExceeded", message: "", stack: "" };
  let timeExceeded = { type: "TimeLimitExceeded", message: "", stack: "" };

  function describeError(error) {
    // Out of memory surfaces as InternalError, or as a thrown null when even
    // the error object could not be allocated; a null is the mapping's own
    // only if it has a way to throw one.
    if (error === null && !throwsValues) return memoryExceeded;
    try {
      if (error instanceof OutputError) return { type: "InvalidOutput", message: error.message, stack: "" };
      if (error instanceof OutputTooLarge) return { type: "OutputTooLarge", message: error.message, stack: "" };
      if (error instanceof Error) {
        const type = safeString(error.name, "Error");
        const message = clip(safeString(error.message, ""), maxLogChars);
        if (type === "InternalError" && message === "out of memory") return memoryExceeded;
        // The engine's interrupt can reach here as a value: a thenable's
        // then() interrupted inside a job rejects the promise with it.
        if (type === "InternalError" && message === "interrupted") return timeExceeded;
        if (/^(InternalError|RangeError)$/.test(type) && /stack overflow|call stack size/i.test(message)) {
          return { type: "StackLimitExceeded", message: "the mapping exceeded the stack limit (too much recursion)", stack: safeString(error.stack, "") };
        }
        if (message === "circular reference") {
          return { type: "InvalidOutput", message: "the result contains a cycle (circular reference)", stack: "" };
        }
        return { type, message, stack: clip(safeString(error.stack, ""), 16 * maxLogChars) };
      }
      let text;
      if (typeof error === "string") text = error;
      else if (error === null || error === undefined || typeof error !== "object") text = StringCtor(error);
      else {
        try {
          text = stringify(error);
        } catch (e) {
          text = undefined;
        }
        if (typeof text !== "string") text = "[object]";
      }
      text = clip(text, maxLogChars);
      return { type: "ThrownValue", message: "the mapping threw a non-Error value: " + text, stack: "" };
    } catch (e) {
      return { type: "ThrownValue", message: "the mapping threw a value that cannot be described", stack: "" };
    }
  }

  // ---- compiling -----------------------------------------------------------------
  // The Function constructor pastes a body between "(function anonymous(\n) {\n"
  // and "\n})" and evaluates the whole as a script, so a body that closes the
  // function early ("}); code; (function () {") would run code at global scope,
  // outside the factory that gives every call a fresh top level. A body is
  // compiled only once it has parsed as one function body on its own: as the
  // body of a declaration F in strict eval code that throws F before any
  // statement can run (declarations only bind names, in the eval's own scope),
  // and F's source text must then reach the end, or a } of the body closed F.
  // The header spans two lines, as the constructor's does, so that positions
  // match the engine lines the host translates.
  const parseHeader = "throw F; function F(\n) {\n";

  function parseBody(body) {
    let parsed = "";
    try {
      strictEval(parseHeader + body + "\n}");
    } catch (thrown) {
      if (typeof thrown !== "function") return describeError(thrown);
      parsed = apply(functionToString, thrown, []);
      if (parsed === "function F(\n) {\n" + body + "\n}") return null;
    }
    // F ended early, at a } of the body; F's text starts on engine line 1.
    const lines = apply(stringSplit, parsed, ["\n"]);
    return {
      type: "SyntaxError",
      message: "unexpected '}': it closes a bracket that the source never opened",
      stack: "    at <input>:" + lines.length + ":" + lines[lines.length - 1].length + "\n",
    };
  }

  // ---- host protocol -----------------------------------------------------------
  // Every answer is one JSON text: [0, output, logs] ok · [1, null, logs]
  // skipped · [2, error, logs] failed · [3] a Promise is still pending; an
  // object output with no console lines is sent bare (the common case).
  function logsJson() {
    if (logs === null) return "[]";
    if (dropped > 0) apply(arrayPush, logs, [{ level: "warn", message: dropped + " more console lines dropped" }]);
    return stringify(logs);
  }

  function failed(error) {
    return "[2," + stringify(describeError(error)) + "," + logsJson() + "]";
  }

  let maxOutputChars = 1048576;
  let throwsStatically = false; // the source has a throw statement or settles Promises
  let throwsValues = false; // … or this call has thrown into a generator

  function finish(value) {
    if (value === null || value === undefined) return "[1,null," + logsJson() + "]";
    let text;
    try {
      text = stringify(value, checkValue);
    } catch (error) {
      if (error instanceof Error && /stack overflow|call stack size/i.test(safeString(error.message, ""))) {
        return failed(new OutputError("the result is nested too deeply to serialize"));
      }
      return failed(error);
    }
    if (text.length > maxOutputChars) {
      return failed(new OutputTooLarge("the result is " + text.length + " characters of JSON; the limit is " + maxOutputChars));
    }
    if (logs === null && text[0] === "{") return text;
    return "[0," + text + "," + logsJson() + "]";
  }

  return function install(body, configJson) {
    const config = parse(configJson);
    maxLogLines = config.maxLogLines;
    maxOutputChars = config.maxOutputChars;
    throwsStatically = config.throwsValues;
    throwsValues = throwsStatically;
    memoryExceeded = freeze({ type: "MemoryLimitExceeded", message: config.memoryMessage, stack: "" });
    timeExceeded = freeze({ type: "TimeLimitExceeded", message: config.timeMessage, stack: "" });
    const problem = parseBody(body);
    if (problem !== null) return stringify(problem);
    lockdown(config.synchronous);
    let factory;
    try {
      factory = OriginalFunction(body);
    } catch (error) {
      return stringify(describeError(error));
    }
    // `anonymous` names the factory inside the source: a property set on it
    // would outlive the call.
    freeze(factory.prototype);
    freeze(factory);
    let settled = null;

    // The request comes as JSON text with `rawBody` left null (when it is a
    // string), and the raw text on its own: a second copy of the body costs
    // nothing to hand over as a string, but much to escape into JSON and parse.
    function start(requestJson, rawBody) {
      logs = null;
      dropped = 0;
      settled = null;
      throwsValues = throwsStatically;
      let result;
      try {
        const map = factory();
        if (typeof map !== "function") return "[2," + stringify({ type: "TypeError", message: "the mapping does not define a function map(request)", stack: "" }) + ",[]]";
        const request = parse(requestJson);
        if (rawBody !== null) request.rawBody = rawBody;
        result = map(request);
      } catch (error) {
        return failed(error);
      }
      try {
        if (result !== null && typeof result === "object" && typeof result.then === "function") {
          PromiseCtor.resolve(result).then(
            (value) => {
              settled = finish(value);
            },
            (error) => {
              settled = failed(error);
            },
          );
          return "[3]";
        }
      } catch (error) {
        return failed(error);
      }
      return finish(result);
    }

    function collect() {
      return settled === null ? "[3]" : settled;
    }

    // "" when the source defines map(); otherwise a described error.
    function check() {
      throwsValues = throwsStatically;
      try {
        if (typeof factory() === "function") return "";
        return stringify({ type: "SpecError", message: "the mapping does not define a function map(request)", stack: "" });
      } catch (error) {
        return stringify(describeError(error));
      }
    }

    // Long concatenations are ropes, which the Python binding cannot read:
    // slice(0) hands back a flat copy.
    return (op, requestJson, rawBody) => apply(stringSlice, op === 0 ? start(requestJson, rawBody) : op === 1 ? collect() : check(), [0]);
  };
})();
