"""JavaScript mappings in the in-process QuickJS runtime: the contract of SPEC §2.

Hostile code lives in sandbox/hostile/ (test_hostile.py); these are the
ordinary guarantees a mapping author relies on.
"""

from __future__ import annotations

import gc
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
import quickjs

from mapper import Limits, Mapping, MappingResult, MappingSpecError, compile_mapping, make_request
from mapper.javascript import Engine

SHORT = Limits(time_ms=200)

STRIPE_SOURCE = """\
// Stripe customer.created -> welcome flow
function firstName(name) {
  return name.split(" ")[0];
}

function map(request) {
  const customer = request.body.data.object;
  return {
    targetUserIds: [customer.metadata.atomic_user_id],
    flowInvocationId: request.body.id,
    variables: { firstName: firstName(customer.name), email: customer.email },
  };
}
"""

STRIPE_EVENT = {
    "id": "evt_123",
    "type": "customer.created",
    "data": {"object": {"name": "Ada Lovelace", "email": "ada@example.com", "metadata": {"atomic_user_id": "u-42"}}},
}


def javascript(source: str, limits: Limits | None = None) -> Mapping:
    return compile_mapping({"kind": "javascript", "source": source}, limits=limits)


def request(body: Any = None) -> dict[str, Any]:
    raw = json.dumps({} if body is None else body).encode()
    return make_request("POST", "/hooks/test", {"Content-Type": "application/json"}, "", raw, "application/json")


def run(source: str, body: Any = None, limits: Limits | None = None) -> MappingResult:
    return javascript(source, limits).run(request(body))


def output_of(expression: str, body: Any = None) -> Any:
    """The value of a JavaScript expression, carried out as a variable."""
    result = run(
        f"function map(request) {{ return {{ targetUserIds: ['u1'], variables: {{ value: {expression} }} }}; }}", body
    )
    assert result.ok, result.to_dict()
    assert result.output is not None
    return result.output["variables"]["value"]


# ---- happy path ---------------------------------------------------------------


def test_maps_a_stripe_event() -> None:
    result = run(STRIPE_SOURCE, STRIPE_EVENT)
    assert result.ok and not result.skipped
    assert result.output == {
        "targetUserIds": ["u-42"],
        "flowInvocationId": "evt_123",
        "variables": {"firstName": "Ada", "email": "ada@example.com"},
    }
    assert result.error is None
    assert result.validation_errors == []
    assert result.logs == []
    assert isinstance(result.duration_ms, float) and result.duration_ms >= 0


def test_the_request_object_is_what_make_request_built() -> None:
    source = """\
function map(request) {
  const { method, path, contentType: type, body } = request;
  return { targetUserIds: ["u1"], metadata: { method, path, type, ct: request.headers["content-type"], body } };
}
"""
    result = run(source, {"x": [1, 2]})
    assert result.output is not None
    assert result.output["metadata"] == {
        "method": "POST",
        "path": "/hooks/test",
        "type": "application/json",
        "ct": "application/json",
        "body": {"x": [1, 2]},
    }


def test_non_object_result_is_a_validation_error_at_the_root() -> None:
    result = run("function map(request) { return 'u1'; }")
    assert not result.ok and result.error is None
    assert result.output == "u1"
    assert [error["path"] for error in result.validation_errors] == ["$"]


def test_a_compiled_mapping_is_reusable_and_keeps_no_state() -> None:
    mapping = javascript(
        "let calls = 0;\nfunction map(request) { calls++; return { targetUserIds: [request.body.id + ':' + calls] }; }"
    )
    outputs = [mapping.run(request({"id": name})).output for name in ("a", "b", "c")]
    assert outputs == [{"targetUserIds": ["a:1"]}, {"targetUserIds": ["b:1"]}, {"targetUserIds": ["c:1"]}]


# ---- helpers -----------------------------------------------------------------


BODY = {"data": {"object": {"id": "cus_1", "items": [{"sku": "A"}, {"sku": "B"}], "none": None}}}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("flowhook.get(request.body, 'data.object.id')", "cus_1"),
        ("flowhook.get(request.body, 'data.object.items.1.sku')", "B"),
        ("flowhook.get(request.body, 'data.missing.deeper', 'fallback')", "fallback"),
        ("flowhook.get(request.body, 'data.object.none.x', 'fallback')", "fallback"),
        ("flowhook.get(request.body, 'data.object.none', 'fallback')", None),
        ("flowhook.get(null, 'a', 7)", 7),
        ("flowhook.toArray('u1')", ["u1"]),
        ("flowhook.toArray(['u1', 'u2'])", ["u1", "u2"]),
        ("flowhook.toArray(null)", []),
        ("flowhook.toArray(undefined)", []),
        ("flowhook.toArray(0)", [0]),
        (
            "flowhook.compact({ a: 1, b: null, c: undefined, d: 0, e: '', f: false })",
            {"a": 1, "d": 0, "e": "", "f": False},
        ),
        ("flowhook.pick({ a: 1, b: 2, c: 3 }, ['a', 'c', 'zz'])", {"a": 1, "c": 3}),
        ("flowhook.pick(null, ['a'])", {}),
    ],
)
def test_flowhook_helpers(expression: str, expected: Any) -> None:
    assert output_of(expression, BODY) == expected


def test_helpers_and_console_cannot_be_replaced() -> None:
    source = """\
function map(request) {
  try { flowhook.get = () => "hacked"; } catch (e) {}
  try { console.log = () => {}; } catch (e) {}
  console.log("still captured");
  return { targetUserIds: [flowhook.get(request.body, "id")] };
}
"""
    result = run(source, {"id": "u1"})
    assert result.output == {"targetUserIds": ["u1"]}
    assert result.logs == [{"level": "log", "message": "still captured"}]


# ---- modern syntax -------------------------------------------------------------


MODERN_SOURCE = """\
class Customer {
  #secret = "hidden";
  static from(raw) { return new Customer(raw); }
  constructor({ id, name: fullName = "Anon", tags = [] }) {
    this.id = id;
    this.fullName = fullName;
    this.tags = tags;
  }
  get first() { return this.fullName.split(" ")[0]; }
}

const upper = (text) => text?.toUpperCase() ?? null;

function map({ body: { customer, ...rest } }) {
  const c = Customer.from(customer);
  const [firstTag = "none", ...others] = c.tags;
  return {
    targetUserIds: [`${c.id}`],
    variables: {
      first: c.first,
      city: upper(customer.address?.city),
      zip: customer.address?.zip ?? "n/a",
      firstTag,
      others,
      restKeys: Object.keys(rest),
      doubled: c.tags.map((t) => t + t),
      entries: Object.fromEntries([["k", 1 ** 2]]),
    },
  };
}
"""


def test_modern_syntax() -> None:
    body = {
        "customer": {"id": 7, "name": "Grace Hopper", "tags": ["a", "b", "c"], "address": {"city": "nyc"}},
        "extra": 1,
    }
    result = run(MODERN_SOURCE, body)
    assert result.ok, result.to_dict()
    assert result.output == {
        "targetUserIds": ["7"],
        "variables": {
            "first": "Grace",
            "city": "NYC",
            "zip": "n/a",
            "firstTag": "a",
            "others": ["b", "c"],
            "restKeys": ["extra"],
            "doubled": ["aa", "bb", "cc"],
            "entries": {"k": 1},
        },
    }


def test_modern_syntax_with_missing_optional_parts() -> None:
    result = run(MODERN_SOURCE, {"customer": {"id": "x"}})
    assert result.ok, result.to_dict()
    assert result.output is not None
    assert result.output["variables"]["city"] is None
    assert result.output["variables"]["first"] == "Anon"
    assert result.output["variables"]["firstTag"] == "none"


# ---- async ---------------------------------------------------------------------


def test_async_map_is_awaited() -> None:
    source = """\
async function lookup(id) {
  await null;
  return "user-" + id;
}
async function map(request) {
  const ids = await Promise.all(request.body.ids.map(lookup));
  return { targetUserIds: ids };
}
"""
    assert run(source, {"ids": [1, 2]}).output == {"targetUserIds": ["user-1", "user-2"]}


def test_returned_promise_is_awaited() -> None:
    source = (
        "function map(request) { return Promise.resolve(request.body.id).then((id) => ({ targetUserIds: [id] })); }"
    )
    assert run(source, {"id": "u9"}).output == {"targetUserIds": ["u9"]}


def test_async_rejection_is_an_error_with_its_line() -> None:
    source = "async function map(request) {\n  await null;\n  throw new TypeError('late');\n}"
    result = run(source)
    assert result.error is not None
    assert (result.error["type"], result.error["message"], result.error["line"]) == ("TypeError", "late", 3)


def test_async_map_resolving_to_null_is_skipped() -> None:
    result = run("async function map(request) { await null; return null; }")
    assert result.ok and result.skipped and result.output is None


# ---- console ---------------------------------------------------------------------


def test_console_levels_and_formatting_are_captured() -> None:
    source = """\
function map(request) {
  console.log("plain", 1, { b: 2 }, [3], null, undefined, true);
  console.info("info");
  console.warn("warn");
  console.error("error");
  console.debug("debug");
  return { targetUserIds: ["u1"] };
}
"""
    result = run(source)
    assert result.ok
    assert result.logs == [
        {"level": "log", "message": 'plain 1 {"b":2} [3] null undefined true'},
        {"level": "info", "message": "info"},
        {"level": "warn", "message": "warn"},
        {"level": "error", "message": "error"},
        {"level": "debug", "message": "debug"},
    ]


CLASS_ERROR = "new (class extends Error { constructor(m) { super(m); this.name = 'Oops'; } })('o')"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("new Error('e')", "Error: e"),
        ("new TypeError('bad id')", "TypeError: bad id"),
        (CLASS_ERROR, "Oops: o"),
        ("new RangeError()", "RangeError"),
        ("'failed:', new Error('e')", "failed: Error: e"),
        ("{ error: new Error('e'), n: 1 }", '{"error":"Error: e","n":1}'),
        ("[new TypeError('t'), 2]", '["TypeError: t",2]'),
        ("{ a: { b: [1] } }", '{"a":{"b":[1]}}'),
    ],
)
def test_console_shows_errors_by_name_and_message(arguments: str, message: str) -> None:
    result = run(f"function map(request) {{ console.error({arguments}); return {{ targetUserIds: ['u1'] }}; }}")
    assert result.ok, result.to_dict()
    assert result.logs == [{"level": "error", "message": message}]


def test_a_caught_engine_error_is_logged_without_its_stack() -> None:
    source = """\
function map(request) {
  try {
    null.x;
  } catch (error) {
    console.error(error);
  }
  return { targetUserIds: ["u1"] };
}
"""
    assert run(source).logs == [{"level": "error", "message": "TypeError: cannot read property 'x' of null"}]


def test_console_is_captured_when_the_mapping_fails_or_skips() -> None:
    failed = run("function map(request) { console.log('before'); throw new Error('boom'); }")
    assert failed.error is not None and failed.error["type"] == "Error"
    assert failed.logs == [{"level": "log", "message": "before"}]
    skipped = run("function map(request) { console.warn('skipping'); return null; }")
    assert skipped.skipped and skipped.logs == [{"level": "warn", "message": "skipping"}]


def test_console_lines_are_capped_with_a_notice() -> None:
    source = "function map(request) { for (let i = 0; i < 10; i++) console.log(i); return { targetUserIds: ['u1'] }; }"
    result = run(source, limits=Limits(max_log_lines=3))
    assert result.ok
    assert result.logs[:3] == [{"level": "log", "message": str(i)} for i in range(3)]
    assert len(result.logs) == 4
    assert result.logs[3]["level"] == "warn" and "7" in result.logs[3]["message"]


def test_console_does_not_carry_over_between_calls() -> None:
    mapping = javascript("function map(request) { console.log(request.body.n); return { targetUserIds: ['u1'] }; }")
    assert mapping.run(request({"n": 1})).logs == [{"level": "log", "message": "1"}]
    assert mapping.run(request({"n": 2})).logs == [{"level": "log", "message": "2"}]


LOG_40_LINES = "for (let i = 0; i < 40; i++) console.log('line', i);"


def test_a_long_console_line_is_truncated() -> None:
    result = run("function map(request) { console.log('x'.repeat(5000)); return { targetUserIds: ['u1'] }; }")
    assert result.ok
    (line,) = result.logs
    assert line["message"].startswith("x" * 100)
    assert 100 < len(line["message"]) < 5000


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            f"function map(request) {{ {LOG_40_LINES} return {{ targetUserIds: ['u1'] }}; }}",
            id="ok-with-logs",
        ),
        pytest.param(
            f"function map(request) {{ {LOG_40_LINES} return null; }}",
            id="skipped-with-logs",
        ),
        pytest.param("function map(request) { throw new Error('m'.repeat(600)); }", id="long-error-message"),
    ],
)
def test_run_never_raises_for_long_answers(source: str) -> None:
    result = run(source)
    assert json.dumps(result.to_dict())


# ---- skipping ----------------------------------------------------------------------


@pytest.mark.parametrize("statement", ["return null;", "return undefined;", "return;", "if (false) return {};"])
def test_null_or_undefined_skips(statement: str) -> None:
    result = run(f"function map(request) {{ {statement} }}")
    assert result.ok and result.skipped
    assert result.output is None and result.error is None and result.validation_errors == []


# ---- errors -------------------------------------------------------------------------


def test_error_reports_type_message_and_position_in_the_users_source() -> None:
    source = """
// a comment
function map(request) {
  const customer = request.body.customer;
  return { targetUserIds: [customer.id] };
}
"""
    result = run(source, {})
    assert not result.ok and not result.skipped and result.output is None
    assert result.error is not None
    assert result.error["type"] == "TypeError"
    assert "id" in result.error["message"]
    assert result.error["line"] == 5
    assert result.error["column"] == 28  # where `customer.id` starts
    assert result.error["stack"].splitlines() == ["    at map (mapping.js:5:28)"]


def test_error_inside_a_helper_points_at_the_helper_line() -> None:
    source = """\
function requireField(object, name) {
  if (!(name in object)) {
    throw new RangeError("missing " + name);
  }
  return object[name];
}

function map(request) {
  return { targetUserIds: [requireField(request.body, "userId")] };
}
"""
    result = run(source, {})
    assert result.error is not None
    assert (result.error["type"], result.error["message"]) == ("RangeError", "missing userId")
    assert result.error["line"] == 3
    stack = result.error["stack"]
    assert "requireField (mapping.js:3:" in stack
    assert "map (mapping.js:9:" in stack
    assert stack.index("requireField") < stack.index("map (")


def test_stack_names_mapping_js_and_hides_the_prelude() -> None:
    result = run("function map(request) {\n  return undefinedName;\n}")
    assert result.error is not None
    assert result.error["type"] == "ReferenceError"
    assert result.error["line"] == 2
    stack = result.error["stack"]
    assert "mapping.js:2:" in stack
    for hidden in ("<input>", "prelude", "install", "start", "factory"):
        assert hidden not in stack


def test_user_defined_error_class_keeps_its_name() -> None:
    source = """\
class MyError extends Error {
  constructor(m) { super(m); this.name = "MyError"; }
}
function map(request) {
  throw new MyError("custom");
}
"""
    result = run(source)
    assert result.error is not None
    assert (result.error["type"], result.error["message"]) == ("MyError", "custom")
    assert "map (mapping.js:5:" in result.error["stack"]


@pytest.mark.parametrize(
    ("thrown", "text"), [("'boom'", "boom"), ("42", "42"), ("{ code: 7 }", '{"code":7}'), ("null", "null")]
)
def test_throwing_a_non_error_is_a_thrown_value(thrown: str, text: str) -> None:
    result = run(f"function map(request) {{ throw {thrown}; }}")
    assert result.error is not None
    assert result.error["type"] == "ThrownValue"
    assert text in result.error["message"]


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ("function fail(why) { throw why; }\nfunction map(request) { fail(request.body.missing ?? null); }", "null"),
        ("function map(request) { const nothing = request.body.missing; throw nothing; }", "undefined"),
        # a generator's throw() reached by a computed name: no throw statement in the source
        ("function* g() {}\nfunction map(request) { g()[['thr', 'ow'].join('')](null); }", "null"),
        ("function map(request) { return new Promise((ok, no) => no(request.body.missing ?? null)); }", "null"),
    ],
    ids=["null-parameter", "undefined-variable", "generator-throw", "promise-rejection"],
)
def test_a_null_or_undefined_the_mapping_throws_is_a_thrown_value(source: str, text: str) -> None:
    """The engine throws null itself when it runs out of memory; the mapping's own null is not that."""
    result = run(source)
    assert result.error is not None
    assert result.error["type"] == "ThrownValue"
    assert result.error["message"] == f"the mapping threw a non-Error value: {text}"


def test_a_generator_throw_in_one_call_leaves_the_next_call_out_of_memory() -> None:
    mapping = javascript(
        "function* g() {}\n"
        "function map(request) {\n"
        "  if (request.body.evil === 1) g()[['thr', 'ow'].join('')](null);\n"
        "  const hoard = [];\n"
        "  if (request.body.evil === 2) for (let i = 0; ; i++) hoard.push({ i, label: 'item-' + i });\n"
        "  return { targetUserIds: ['u1'] };\n"
        "}",
        Limits(time_ms=2000, memory_bytes=8 * 1024 * 1024),
    )
    thrown, exhausted = mapping.run(request({"evil": 1})), mapping.run(request({"evil": 2}))
    assert thrown.error is not None and exhausted.error is not None
    assert (thrown.error["type"], exhausted.error["type"]) == ("ThrownValue", "MemoryLimitExceeded")


def test_code_generation_is_an_eval_error() -> None:
    result = run("function map(request) {\n  return eval('1');\n}")
    assert result.error is not None
    assert result.error["type"] in ("EvalError", "ReferenceError")
    result = run("function map(request) {\n  return Function('return 1')();\n}")
    assert result.error is not None
    assert result.error["type"] == "EvalError"
    assert result.error["line"] == 2


def test_result_round_trips_through_json() -> None:
    result = run("function map(request) {\n  console.info('x');\n  null.y;\n}")
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"ok", "skipped", "output", "error", "validationErrors", "logs", "durationMs"}
    assert set(data["error"]) == {"type", "message", "line", "column", "stack"}
    assert MappingResult.from_dict(data).to_dict() == result.to_dict()


# ---- rawBody ------------------------------------------------------------------------


REQUEST_VIEW = """\
function map(request) {
  const key = ['raw', 'Body'].join('');
  return {
    targetUserIds: ['u1'],
    variables: { keys: Object.keys(request), json: JSON.stringify(request), raw: request[key], body: request.body },
  };
}
"""


def request_view(the_request: dict[str, Any]) -> dict[str, Any]:
    result = javascript(REQUEST_VIEW).run(the_request)
    assert result.ok and result.output is not None, result.to_dict()
    variables: dict[str, Any] = result.output["variables"]
    return variables


def test_raw_body_is_in_every_request_whatever_the_source_says() -> None:
    the_request = request({"a": 1})
    view = request_view(the_request)
    assert view["keys"] == list(the_request)  # rawBody included, in the request's own order
    assert view["raw"] == '{"a": 1}'
    assert json.loads(view["json"]) == the_request
    assert the_request["rawBody"] == '{"a": 1}'  # the caller's request is left alone


@pytest.mark.parametrize(
    "raw",
    [
        b'{\r\n  "name" : "J\\u00f6rg \\ud83d\\ude00",\t"n": 1.50E+3 }\n',
        b'{"a": 1, "a": 2, "__proto__": {"polluted": true}}',
        b"[9223372036854775808, -0.0, 1e-7, 0.1, 123456789012345678901234567890]",
        '{"caf\u00e9": "\u20ac \U0001f600", "nested": [[{"deep": [null, true, false]}]]}'.encode(),
    ],
    ids=["whitespace-and-escapes", "duplicate-keys", "numbers", "unicode-and-nesting"],
)
def test_raw_body_is_the_text_as_sent_and_body_its_parsed_value(raw: bytes) -> None:
    the_request = make_request("POST", "/hooks/test", {}, "", raw, "application/json")
    view = request_view(the_request)
    assert view["raw"] == raw.decode()
    assert view["body"] == as_javascript_parses_it(json.dumps(the_request["body"]))


def as_javascript_parses_it(text: str) -> Any:
    """JSON text through the engine's own JSON.parse and back (big integers become doubles)."""
    return json.loads(quickjs.Context().eval(f"JSON.stringify(JSON.parse({json.dumps(text)}))"))


def test_raw_body_of_a_form_and_of_text_in_a_declared_charset() -> None:
    form = make_request("POST", "/h", {}, "", b"user_id=U1&tag=a&tag=b", "application/x-www-form-urlencoded")
    assert request_view(form)["body"] == {"user_id": "U1", "tag": ["a", "b"]}
    assert request_view(form)["raw"] == "user_id=U1&tag=a&tag=b"
    text = make_request("POST", "/h", {}, "", "Grüße €".encode("iso-8859-15"), "text/plain; charset=iso-8859-15")
    assert request_view(text)["raw"] == request_view(text)["body"] == "Grüße €"


@pytest.mark.parametrize("raw_body", [None, 7, {"not": "text"}])
def test_a_request_object_given_as_it_is_keeps_its_raw_body(raw_body: Any) -> None:
    """A SPEC §2 request pasted into the preview API is mapped as it is, even odd."""
    given = {"method": "POST", "body": {"a": 1}, "rawBody": raw_body, "contentType": "application/json"}
    view = request_view(given)
    assert (view["keys"], view.get("raw"), view["body"]) == (list(given), raw_body, {"a": 1})
    assert "rawBody" not in request_view({"body": {"a": 1}})["keys"]


# ---- result rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mentions"),
    [
        ("() => 1", "function"),
        ("function named() {}", "function"),
        ("Symbol('s')", "symbol"),
        ("10n", "bigint"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("[1, 2, () => 3]", "function"),
    ],
)
def test_non_json_values_are_invalid_output(value: str, mentions: str) -> None:
    result = run(f"function map(request) {{ return {{ targetUserIds: ['u1'], variables: {{ bad: {value} }} }}; }}")
    assert not result.ok and result.output is None
    assert result.error is not None
    assert result.error["type"] == "InvalidOutput"
    assert mentions in result.error["message"]


def test_a_cycle_is_invalid_output() -> None:
    result = run("function map(request) { const o = { targetUserIds: ['u1'] }; o.self = o; return o; }")
    assert result.error is not None
    assert result.error["type"] == "InvalidOutput"
    assert "cycle" in result.error["message"] or "circular" in result.error["message"]


def nested_source(levels: int) -> str:
    """An output whose `variables.v` adds `levels` arrays under two objects."""
    return (
        f"function map(request) {{ let v = 1; for (let i = 0; i < {levels}; i++) v = [v];"
        " return { targetUserIds: ['u1'], variables: { v } }; }"
    )


def test_depth_up_to_the_limit_is_accepted() -> None:
    result = run(nested_source(3), limits=Limits(max_depth=5))
    assert result.ok, result.to_dict()
    assert result.output == {"targetUserIds": ["u1"], "variables": {"v": [[[1]]]}}


@pytest.mark.parametrize("levels", [4, 100, 300, 1100, 3000, 100_000])
def test_depth_over_the_limit_is_invalid_output(levels: int) -> None:
    """1,100 levels is more than orjson reads and less than the engine writes: the standard library's
    RecursionError escaped `run` (a traceback from `flowhook map`, a dead slot in the pool)."""
    result = run(nested_source(levels), limits=Limits(max_depth=5))
    assert result.error is not None
    assert result.error["type"] == "InvalidOutput"
    assert "nested" in result.error["message"]


def test_a_deep_result_is_refused_before_it_is_measured() -> None:
    """A result measured for size is written again by orjson, which stops at 255 levels: its TypeError
    escaped `run` when the result was also long and came with console lines."""
    source = (
        "function map(request) { console.log('deep'); let v = 'x'.repeat(400000); "
        "for (let i = 0; i < 300; i++) v = [v]; return { targetUserIds: ['u1'], variables: { v } }; }"
    )
    result = run(source)
    assert result.error is not None and result.error["type"] == "InvalidOutput"
    assert result.logs == [{"level": "log", "message": "deep"}]


def test_half_an_emoji_beside_a_number_past_64_bits_stays_json_data() -> None:
    """The standard library, which reads an answer holding a lone surrogate, keeps 1e20 as an integer
    that orjson (the store's writer) refuses: it is a float, as orjson reads it."""
    result = run(
        "function map(request) { return { targetUserIds: ['u1'], "
        "variables: { cut: '\\ud83d', big: 1e20, small: 42 } }; }"
    )
    assert result.ok, result.to_dict()
    assert result.output == {"targetUserIds": ["u1"], "variables": {"cut": "\ufffd", "big": 1e20, "small": 42}}
    assert isinstance(result.output["variables"]["big"], float)
    assert orjson.loads(orjson.dumps(result.output)) == result.output


@pytest.mark.parametrize(("levels", "ok"), [(253, True), (254, False), (1000, False)])
def test_a_body_nested_deeper_than_the_engine_takes_is_an_invalid_request(levels: int, ok: bool) -> None:
    """The request's JSON writer (orjson) stops at 255 levels: its TypeError was a 500 for the sender."""
    raw = b"[" * levels + b"]" * levels
    the_request = make_request("POST", "/hooks/test", {}, "", raw, "application/json")
    result = javascript("function map(request) { return { targetUserIds: ['u1'] }; }").run(the_request)
    assert result.ok is ok, result.to_dict()
    if not ok:
        assert result.error == {
            "type": "InvalidRequest",
            "message": "the request body is nested deeper than 253 levels, too deep for a JavaScript mapping",
            "line": None,
            "column": None,
            "stack": "",
        }


def test_output_over_the_size_limit_is_rejected() -> None:
    mapping = javascript(
        "function map(request) { return { targetUserIds: ['u1'], variables: { s: 'e'.repeat(request.body.n) } }; }",
        Limits(max_output_bytes=200),
    )
    assert mapping.run(request({"n": 100})).ok
    result = mapping.run(request({"n": 300}))
    assert not result.ok and result.output is None
    assert result.error is not None
    assert result.error["type"] == "OutputTooLarge"
    assert "200" in result.error["message"]


def test_default_output_limit_is_one_mebibyte() -> None:
    result = run(
        "function map(request) { return { targetUserIds: ['u1'], variables: { s: 'e'.repeat(1024 * 1024) } }; }"
    )
    assert result.error is not None
    assert result.error["type"] == "OutputTooLarge"


def test_output_size_limit_counts_bytes() -> None:
    result = run(
        "function map(request) { return { targetUserIds: ['u1'], variables: { s: '\u00e9'.repeat(150) } }; }",
        limits=Limits(max_output_bytes=200),
    )
    assert result.error is not None
    assert result.error["type"] == "OutputTooLarge"


# ---- limits ------------------------------------------------------------------------------

EVIL = {"evil": True}
BENIGN = {"evil": False}

LIMIT_CASES = [
    pytest.param("while (true) {}", SHORT, "TimeLimitExceeded", id="time-loop"),
    pytest.param("/(a+)+$/.test('a'.repeat(40) + 'b');", SHORT, "TimeLimitExceeded", id="time-regex"),
    pytest.param(
        "const hoard = []; for (let i = 0; ; i++) hoard.push({ i });",
        Limits(time_ms=2000, memory_bytes=8 * 1024 * 1024),
        "MemoryLimitExceeded",
        id="memory-objects",
    ),
    pytest.param(
        "const hoard = []; for (;;) hoard.push('x'.repeat(1024) + hoard.length);",
        Limits(time_ms=2000, memory_bytes=8 * 1024 * 1024),
        "MemoryLimitExceeded",
        id="memory-strings",
    ),
    pytest.param("(function down(n) { return down(n + 1) + 1; })(0);", SHORT, "StackLimitExceeded", id="stack"),
    pytest.param(
        "if (request.body.huge) throw new RangeError('no'); const all = []; for (;;) all.push(new Array(1e5).fill(1));",
        Limits(time_ms=2000, memory_bytes=8 * 1024 * 1024),
        "MemoryLimitExceeded",
        id="memory-in-a-source-that-throws",
    ),
]


def limit_source(statement: str) -> str:
    return (
        f"function map(request) {{\n  if (request.body.evil) {{ {statement} }}"
        "\n  return { targetUserIds: ['u1'] };\n}"
    )


@pytest.mark.parametrize(("statement", "limits", "expected"), LIMIT_CASES)
def test_limit_gives_its_named_error(statement: str, limits: Limits, expected: str) -> None:
    result = javascript(limit_source(statement), limits).run(request(EVIL))
    assert not result.ok and result.output is None
    assert result.error is not None
    assert result.error["type"] == expected
    assert result.error["message"]


@pytest.mark.parametrize(("statement", "limits", "expected"), LIMIT_CASES)
def test_same_mapping_works_after_a_limit(statement: str, limits: Limits, expected: str) -> None:
    mapping = javascript(limit_source(statement), limits)
    assert not mapping.run(request(EVIL)).ok
    for _ in range(2):
        result = mapping.run(request(BENIGN))
        assert result.ok, result.to_dict()
        assert result.output == {"targetUserIds": ["u1"]}


def test_time_limit_message_names_the_limit() -> None:
    result = run("function map(request) { for (;;) {} }", limits=SHORT)
    assert result.error is not None
    assert result.error["type"] == "TimeLimitExceeded"
    assert "200 ms" in result.error["message"]
    assert result.duration_ms >= 0


def test_limit_in_one_mapping_does_not_affect_another() -> None:
    spinning = javascript("function map(request) { for (;;) {} }", SHORT)
    recursing = javascript("function map(request) { return map(request); }", SHORT)
    benign = javascript(STRIPE_SOURCE, SHORT)
    for bad in (spinning, recursing):
        assert not bad.run(request()).ok
        assert benign.run(request(STRIPE_EVENT)).output == run(STRIPE_SOURCE, STRIPE_EVENT).output


def test_a_spinning_mapping_on_another_thread_does_not_disturb_one_here() -> None:
    spinning = javascript("function map(request) { for (;;) {} }", SHORT)
    benign = javascript(STRIPE_SOURCE)
    with ThreadPoolExecutor(max_workers=1) as pool:
        spun = pool.submit(spinning.run, request())
        results = [benign.run(request(STRIPE_EVENT)) for _ in range(50)]
        spun_result = spun.result()
    assert spun_result.error is not None and spun_result.error["type"] == "TimeLimitExceeded"
    assert all(
        result.ok and result.output is not None and result.output["targetUserIds"] == ["u-42"] for result in results
    )


# ---- threads ------------------------------------------------------------------------------


def test_one_mapping_run_concurrently_from_many_threads() -> None:
    source = """\
async function map(request) {
  console.log(request.body.id);
  await null;
  return { targetUserIds: [request.body.id], variables: { n: request.body.n * 2 } };
}
"""
    mapping = javascript(source)
    start = threading.Barrier(8)

    def work(worker: int) -> list[tuple[int, MappingResult]]:
        start.wait()
        return [(n, mapping.run(request({"id": f"w{worker}-{n}", "n": n}))) for n in range(40)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(pool.map(work, range(8)))
    for worker, batch in enumerate(batches):
        for n, result in batch:
            assert result.ok, result.to_dict()
            assert result.output == {"targetUserIds": [f"w{worker}-{n}"], "variables": {"n": n * 2}}
            assert result.logs == [{"level": "log", "message": f"w{worker}-{n}"}]


# ---- spec errors ----------------------------------------------------------------------------


def test_syntax_error_has_line_and_column() -> None:
    with pytest.raises(MappingSpecError) as caught:
        javascript("function map(request) {\n  const x = ;\n  return x;\n}")
    error = caught.value
    assert "SyntaxError" in error.message
    assert error.line == 2
    assert error.column is not None and error.column >= 1
    assert error.to_dict() == {"message": error.message, "path": None, "line": 2, "column": error.column}


def test_syntax_error_on_a_later_line_of_a_long_source() -> None:
    source = "\n".join(f"const c{i} = {i};" for i in range(30)) + "\nfunction map(request) {\n  return {;\n}"
    with pytest.raises(MappingSpecError) as caught:
        javascript(source)
    assert caught.value.line == 32


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        ('function map(request) { return {targetUserIds: ["u"]} ', 1, 55),  # the function's brace left open
        ("function map(request) {\n  return {targetUserIds: [request.body.id]\n", 3, 1),
        ("function map(request) { return {}; }\n}", 2, 2),  # one brace too many
    ],
)
def test_unbalanced_brackets_are_reported_at_the_end_of_the_source(source: str, line: int, column: int) -> None:
    """Not at the wrapper code after the source, with a token the user never wrote."""
    with pytest.raises(MappingSpecError) as caught:
        javascript(source)
    error = caught.value
    assert (error.line, error.column) == (line, column)
    assert error.message.startswith("SyntaxError: the brackets do not balance")
    assert "';'" not in error.message and "')'" not in error.message


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        ("function map(request) {\n  return {targetUserIds: ['u1']};\n}\n} function reopened() {", 4, 1),
        ("function map(request) {\n  if (request) { return null; } }}\n  let calls = 0; function g() {", 2, 34),
    ],
)
def test_a_brace_that_closes_the_compiled_function_is_a_syntax_error_where_it_stands(
    source: str, line: int, column: int
) -> None:
    """Such a source closed the function the Function constructor wraps it in, and its rest ran once at
    global scope, before the lockdown, keeping state between calls (sandbox/hostile/100-…)."""
    with pytest.raises(MappingSpecError) as caught:
        javascript(source)
    assert caught.value.to_dict() == {
        "message": "SyntaxError: unexpected '}': it closes a bracket that the source never opened",
        "path": None,
        "line": line,
        "column": column,
    }


def test_code_after_a_closed_wrapper_never_runs() -> None:
    """Compiling runs nothing of the source before the lockdown: here it would loop past the time limit."""
    with pytest.raises(MappingSpecError, match="^SyntaxError"):
        javascript("}); while (true) {} (function () {\nfunction map(request) { return null; }", SHORT)
    with pytest.raises(MappingSpecError, match="closes a bracket"):
        javascript("function map(request) { return null; }\n} while (true) {} function reopened() {", SHORT)


def test_the_watchdog_holds_engines_weakly() -> None:
    """An engine dropped while the watchdog thread held its slot was freed on that thread, where QuickJS
    frees none of its heap: up to the memory limit per discarded engine, for good."""
    engine = Engine("function map(request) { return null; }", Limits())
    slot = engine.watch  # as the watchdog's tick holds it
    del engine
    gc.collect()
    assert slot.engine() is None


def test_an_open_string_keeps_the_engines_own_position() -> None:
    with pytest.raises(MappingSpecError) as caught:
        javascript('function map(request) { return "abc')
    assert (caught.value.line, caught.value.message) == (1, "SyntaxError: unexpected end of string")


@pytest.mark.parametrize(
    "source",
    [
        "function mapp(request) { return {}; }",
        "const map = 5;",
        "   \n  ",
        "// only a comment",
        "var Map = () => ({});",
    ],
)
def test_source_without_a_map_function(source: str) -> None:
    with pytest.raises(MappingSpecError, match=r"map\(request\)"):
        javascript(source)


def test_map_defined_as_an_arrow_function_is_accepted() -> None:
    assert run("const map = (request) => ({ targetUserIds: [request.body.id] });", {"id": "u1"}).output == {
        "targetUserIds": ["u1"]
    }


def test_top_level_throw_is_a_spec_error_with_its_line() -> None:
    with pytest.raises(MappingSpecError) as caught:
        javascript("const config = {};\nif (!config.ready) throw new Error('not configured');\nfunction map() {}")
    assert "not configured" in caught.value.message
    assert caught.value.line == 2


def test_top_level_infinite_loop_is_a_spec_error() -> None:
    with pytest.raises(MappingSpecError, match="time limit"):
        javascript("for (;;) {}\nfunction map(request) { return null; }", SHORT)


def test_a_top_level_limit_reads_the_same_whoever_caught_it() -> None:
    with pytest.raises(MappingSpecError) as caught:
        javascript("const keep = [];\nfor (;;) keep.push([keep.length]);\nfunction map(request) { return null; }")
    assert caught.value.message == "top-level code: the mapping exceeded the memory limit of 32 MiB"


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "javascript", "source": ""},
        {"kind": "javascript"},
        {"kind": "javascript", "source": 5},
        {"kind": "javascript", "source": "function map(r) {}", "extra": True},
    ],
)
def test_malformed_javascript_spec(spec: dict[str, Any]) -> None:
    with pytest.raises(MappingSpecError) as caught:
        compile_mapping(spec)
    assert caught.value.path is not None and caught.value.path.startswith("$")
