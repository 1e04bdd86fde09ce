"""The answer text a mapping engine hands back, and its decoding.

The sandbox prelude answers every call with one JSON text, and sandbox
workers pass that text through untouched so that decoding and validation
happen once, in the trusted process:

    {...}                     ok: the output object, no console lines
    [0, output, logs]         ok
    [1, null, logs]           skipped (map returned null/undefined)
    [2, error, logs]          failed; error is {type, message, stack}
    [3]                       a returned Promise never settled
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from mapper.limits import Limits
from mapper.result import ErrorInfo, Produced, error_info, nesting_exceeds, too_deep
from mapper.stacktrace import locate

PENDING = "[3]"


class MalformedAnswer(ValueError):
    """An answer text that does not follow the protocol above."""


def failure_answer(info: ErrorInfo) -> str:
    """The answer for an error the host detected (a limit, a crash)."""
    return orjson.dumps([2, info, []]).decode()


def encode_produced(produced: Produced) -> str:
    if produced.error is not None:
        return orjson.dumps([2, produced.error, produced.logs]).decode()
    if produced.value is None:
        return orjson.dumps([1, None, produced.logs]).decode()
    return orjson.dumps([0, produced.value, produced.logs]).decode()


def decode_answer(text: str, limits: Limits) -> Produced:
    try:
        if text[0] == "{":
            return _output(text, text, _loads(text), [], limits)
        if text == PENDING:
            return Produced(error=error_info("UnsettledPromise", "map() returned a Promise that never settled"))
        tag, value, logs = _loads(text)
    except _TooDeep:
        return Produced(error=too_deep(limits.max_depth))
    except (IndexError, ValueError, TypeError) as error:
        raise MalformedAnswer(f"malformed answer: {error}") from None
    if tag == 0:
        return _output(text, None, value, logs, limits)
    if tag == 1:
        return Produced(logs=logs)
    if tag == 2 and isinstance(value, dict):
        return Produced(error=value if "line" in value else described(value), logs=logs)
    raise MalformedAnswer(f"unknown answer tag {tag!r}")


class _TooDeep(Exception):
    """An answer nested deeper than its decoders go: far deeper than `Limits.max_depth` allows."""


def _loads(text: str) -> Any:
    """The answer's JSON. orjson stops at 1,024 levels, the standard library at its recursion limit (about
    1,000 levels): either is far beyond `Limits.max_depth`, so such an answer is a result nested too deep.
    A string the mapping cut inside a surrogate pair (half an emoji) is written by JSON.stringify as a lone
    `\\ud83d` escape, which orjson refuses; such a text is parsed by the standard library instead, and each
    lone surrogate becomes U+FFFD, as TextEncoder makes it."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        if str(error).startswith("depth limit exceeded"):
            raise _TooDeep from None
    try:
        return _without_lone_surrogates(json.loads(text, parse_int=_integer))
    except RecursionError:
        raise _TooDeep from None


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value


def _integer(digits: str) -> int | float:
    """An integer as orjson reads it: a float beyond 64 bits (which orjson, writing it again, would refuse)."""
    value = int(digits)
    return value if -(2**63) <= value < 2**64 else float(value)


def described(data: dict[str, Any]) -> ErrorInfo:
    """An error as the prelude describes it, located in the user's source."""
    if data["type"] == "StackLimitExceeded":
        return error_info(data["type"], data["message"])
    line, column, stack = locate(data.get("stack") or "")
    return error_info(data["type"], data["message"], line=line, column=column, stack=stack)


def _output(text: str, output_text: str | None, value: Any, logs: list[dict[str, str]], limits: Limits) -> Produced:
    # Counting brackets in the text is far cheaper than walking the value,
    # and fewer brackets than the limit cannot nest deeper than it.
    max_depth = limits.max_depth
    if text.count("{") + text.count("[") > max_depth and nesting_exceeds(value, max_depth):
        return Produced(error=too_deep(max_depth), logs=logs)
    # The engine bounds the output in UTF-16 units; UTF-8 can be up to 3x that,
    # so only a text that could be over the byte limit is measured.
    if len(text) * 3 > limits.max_output_bytes:
        size = len((output_text or orjson.dumps(value).decode()).encode())
        if size > limits.max_output_bytes:
            message = f"the result is {size} bytes of JSON; the limit is {limits.max_output_bytes}"
            return Produced(error=error_info("OutputTooLarge", message), logs=logs)
    return Produced(value=value, logs=logs)
