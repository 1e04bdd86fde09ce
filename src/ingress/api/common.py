"""What every management endpoint needs: services, the environment, JSON input checks."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, unquote_to_bytes

import orjson
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from ingress.api.queries import given
from ingress.body import BodyTimedOut, BodyTooLarge, read_body
from ingress.errors import ApiError
from ingress.services import Services
from mapper.request import nested_past_reading
from store.environments import get_environment
from store.storable import NUL  # the API refuses it (400/422) where the webhook path must keep what it can

T = TypeVar("T")

MAX_BODY_BYTES = 2 * 1024 * 1024
CLOSE = {"Connection": "close"}  # the rest of a body that was not read is never read
# Nesting of arrays and objects in a body. Validators and the store recurse through documents (the store's JSON
# encoder stops at 254 levels, the flow schema's validator far sooner), so deeper input is refused up front.
MAX_DEPTH = 64
REPLACEMENT = "\ufffd"  # what decoding made of a percent-escape that is not UTF-8


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


_NUL = "must not contain the NUL character (U+0000)"
_NOT_UTF8 = "has a percent-escape that is not UTF-8"


def refuse_unreadable_parameters(request: Request) -> None:
    """A 400 for a path or query parameter holding NUL, as nothing stored can match it (and PostgreSQL fails on
    it), or a percent-escape that is not UTF-8, which decoding made U+FFFD (so `%FF` and `%FE` were one id).
    A U+FFFD sent as itself (`%EF%BF%BD`) is an id like any other."""
    path = [str(value) for value in request.path_params.values()]
    if any(NUL in value for value in path):
        raise ApiError(400, "invalid_parameter", f"the path {_NUL}")
    if any(REPLACEMENT in value for value in path) and not _utf8(request.scope.get("raw_path", b"")):
        raise ApiError(400, "invalid_parameter", f"the path {_NOT_UTF8}")
    refuse_unreadable_query(request)


def refuse_unreadable_query(request: Request) -> None:
    """`refuse_unreadable_parameters` for the query alone (ingress.api.known_parameters: before naming an
    unknown parameter, say that its name is unreadable)."""
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise ApiError(400, "invalid_parameter", f"query parameter {name!r} {_NUL}")
        if REPLACEMENT in name or REPLACEMENT in value:
            for pair in request.scope["query_string"].split(b"&"):
                if not _utf8(pair.replace(b"+", b" ")):
                    named = unquote(pair.partition(b"=")[0].decode("latin-1"), errors="replace")
                    raise ApiError(400, "invalid_parameter", f"query parameter {named!r} {_NOT_UTF8}")


def _utf8(escaped: bytes) -> bool:
    """Whether percent-escaped text decodes as UTF-8."""
    try:
        unquote_to_bytes(escaped).decode()
    except UnicodeDecodeError:
        return False
    return True


async def environment(request: Request) -> str:
    """The `{env}` of the path, which must exist (404 otherwise); no parameter may be unreadable (400)."""
    refuse_unreadable_parameters(request)
    env_id: str = request.path_params["env"]
    if await services(request).store.read(lambda conn: get_environment(conn, env_id)) is None:
        raise not_found("environment", env_id)
    return env_id


async def request_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body, or a 408/413 when it does not arrive in time or exceeds `limit` bytes."""
    timeout = services(request).settings.body_timeout_seconds
    try:
        return await read_body(request.receive, limit, request.headers.get("content-length"), timeout)
    except BodyTooLarge:
        raise ApiError(413, "body_too_large", f"the body exceeds {limit} bytes", headers=CLOSE) from None
    except BodyTimedOut:
        raise ApiError(408, "body_timeout", f"the body did not arrive within {timeout:g} s", headers=CLOSE) from None


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400/408/413/422 saying why not (422: see `refuse_unstorable`)."""
    return parsed_object(await request_body(request))


def parsed_object(raw: bytes) -> dict[str, Any]:
    """`raw` as a JSON object, or a 400/422 saying why not."""
    data = parsed_json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    refuse_unstorable(data, look_for_nul=b"\\u0000" in raw)  # JSON text can hold NUL only escaped
    return data


def parsed_json(raw: bytes) -> Any:
    """`raw`, a body meant to be a JSON object, as JSON (the caller checks that it is an object), or a 400
    `invalid_json`. An object nested past what orjson reads (1,024 levels) is valid JSON: it gets the 422 of
    any body nested past MAX_DEPTH (`refuse_unstorable`), with the same path, rather than a 400."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if not nested_past_reading(error):
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    if not raw.lstrip().startswith(b"{"):  # an array, as the callers refuse any other JSON
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    raise _too_deep(_deep_path(raw))


def refuse_unstorable(data: dict[str, Any], *, look_for_nul: bool) -> None:
    """A 422 `invalid_field` at the first place nesting passes MAX_DEPTH or (when looked for) a key or string
    holds NUL. Iterative, so that checking deep input cannot itself exhaust the stack."""
    stack: list[tuple[dict[str, Any] | list[Any], str, int]] = [(data, "$", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep(path)
        for key, child in node.items() if isinstance(node, dict) else enumerate(node):
            if isinstance(child, dict | list):
                stack.append((child, _child_path(path, key), depth + 1))
            if look_for_nul and (_holds_nul(key) or _holds_nul(child)):
                raise _unstorable(_child_path(path, key), "strings must not contain the NUL character (U+0000)")


# What the text of a JSON document that parsed up to some point holds, as far as its nesting goes: each string
# whole (a key's is decoded), and the punctuation; numbers, literals and white space are skipped.
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[][{},]')


def _deep_path(raw: bytes) -> str:
    """The path of the first array or object of `raw` nested deeper than MAX_DEPTH, found in the text: orjson
    refused the document (too deep for it) after reading, and so checking, all the text up to that place."""
    steps: list[str | int | None] = []  # per open container: its current index, or key (None: a key is due)
    for token in _JSON_TOKENS.finditer(raw):
        text = token.group()
        if text in (b"[", b"{"):
            if len(steps) == MAX_DEPTH:
                break
            steps.append(0 if text == b"[" else None)
        elif text in (b"]", b"}"):
            steps.pop()
        elif text == b",":
            step = steps[-1]
            steps[-1] = step + 1 if isinstance(step, int) else None
        elif steps and steps[-1] is None:  # a key; a string that is a value changes nothing
            steps[-1] = orjson.loads(text)
    path = "$"
    for step in steps:
        assert step is not None  # a container opens only as a value, after its key
        path = _child_path(path, step)
    return path


def _too_deep(path: str) -> ApiError:
    return _unstorable(path, f"the body nests deeper than {MAX_DEPTH} levels")


def _unstorable(path: str, message: str) -> ApiError:
    """With `errors` too, the shape of the 422s that list every problem (a flow's, the Action Flow API's)."""
    return ApiError(422, "invalid_field", message, path=path, errors=[{"path": path, "message": message}])


def _holds_nul(value: object) -> bool:
    return isinstance(value, str) and NUL in value


def _child_path(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def refuse_unknown(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        message = f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        raise ApiError(422, "unknown_field", message, path=f"$.{unknown[0]}")


def field(data: dict[str, Any], name: str, check: Callable[[Any], bool], expected: str, default: T) -> Any:
    """`data[name]` if present and passing `check`, `default` if absent; a 422 naming the field otherwise."""
    if name not in data:
        return default
    value = data[name]
    if not check(value):
        raise ApiError(422, "invalid_field", f"{name} must be {expected}", path=f"$.{name}")
    return value


def integral(value: Any) -> bool:
    """An integer as JSON Schema counts one, which the document's `type: integer` promises: `2.0` is one (a
    client may write every number as a float), `2.5` and `true` are not."""
    return type(value) is int or (type(value) is float and value.is_integer())


def int_field(data: dict[str, Any], name: str, low: int, high: int | None, expected: str, default: T) -> int | T:
    """`data[name]` as an int if it is an integer from `low` to `high` (None: no bound), `default` if absent; a
    422 naming the field otherwise."""
    value = field(data, name, lambda v: integral(v) and low <= v and (high is None or v <= high), expected, None)
    return default if value is None else int(value)


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = given(request, name)
    if raw is None:
        return default
    if not decimal_digits(raw) or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer from {low} to {high}")
    return int(raw)


def decimal_digits(text: str) -> bool:
    """ASCII 0-9 only: `str.isdigit` also takes "²" (which `int` refuses) and "１" (which it reads as 1)."""
    return text.isascii() and text.isdigit()


def not_found(kind: str, identifier: str) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"no {kind} {identifier!r}")


async def read_found(request: Request, kind: str, identifier: str, query: Callable[[Connection], T | None]) -> T:
    """What `query` reads, or a 404 `{kind}_not_found` when it finds nothing."""
    found = await services(request).store.read(query)
    if found is None:
        raise not_found(kind, identifier)
    return found


async def delete_found(request: Request, kind: str, identifier: str, delete: Callable[[Connection], bool]) -> Response:
    """204 once `delete` removed something; a 404 `{kind}_not_found` when there was nothing to remove."""
    if not await services(request).store.write(delete):
        raise not_found(kind, identifier)
    return Response(status_code=204)
