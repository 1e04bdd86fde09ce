"""A numeric `targetUserIds` in a JMESPath fields mapping becomes the text JavaScript's `String(n)` gives it.

It was Python's `str`: `1.0` became "1.0" (JavaScript: "1") and `1e20`
"1e+20" (JavaScript: "100000000000000000000"), so one request named another
user than a JavaScript mapping returning `String(request.body.id)`.
"""

from __future__ import annotations

import json

import orjson
import pytest
import quickjs
from hypothesis import given, settings
from hypothesis import strategies as st

from mapper import compile_mapping, make_request
from mapper.jmes import js_number_text

ENGINE = quickjs.Context()


def javascript_string(number: float) -> str:
    text: str = ENGINE.eval(f"String({json.dumps(number)})")
    return text


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (1e20, "100000000000000000000"),
        (1.2345678901234568e20, "123456789012345680000"),
        (1e21, "1e+21"),
        (-1e21, "-1e+21"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-10, "1.5e-10"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_numbers_are_written_as_javascript_writes_them(number: float, text: str) -> None:
    assert js_number_text(number) == text == javascript_string(number)


#: Numbers written with up to 15 significant digits, as ids and amounts are. Not any double: for a few binary
#: fractions QuickJS writes more digits than the shortest that reads back (2**-24 as "5.9604644775390625e-8",
#: where ECMAScript's Number::toString and V8 give "5.960464477539063e-8"); js_number_text follows the spec.
DECIMALS = st.builds(
    lambda digits, exponent: float(f"{digits}e{exponent}"),
    st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1),
    st.integers(min_value=-40, max_value=40),
)


@settings(derandomize=True, max_examples=300)  # the same examples on every run: CI never meets a new one
@given(DECIMALS)
def test_any_decimal_is_written_as_javascript_writes_it(number: float) -> None:
    assert js_number_text(number) == javascript_string(number)


def test_where_quickjs_strays_from_the_shortest_text_the_spec_is_followed() -> None:
    assert js_number_text(2**-24) == "5.960464477539063e-8"


@pytest.mark.parametrize("spelled", [b"1.0", b"1e0", b"100.0", b"1e20", b"1e21", b"0.0000001", b"42", b"-3.25"])
def test_a_jmespath_and_a_javascript_mapping_name_the_same_user(spelled: bytes) -> None:
    body = b'{"id": ' + spelled + b"}"
    request = make_request("POST", "/hooks/h", {}, "", body, "application/json")
    jmespath = compile_mapping({"kind": "jmespath", "fields": {"targetUserIds": "body.id"}}).run(request)
    source = "function map(request) { return {targetUserIds: [String(request.body.id)]}; }"
    javascript = compile_mapping({"kind": "javascript", "source": source}).run(request)
    assert jmespath.ok and javascript.ok, (jmespath.to_dict(), javascript.to_dict())
    assert jmespath.output == javascript.output
    assert jmespath.output == {"targetUserIds": [javascript_string(orjson.loads(spelled))]}
