"""A sample as the `request` a mapping sees: what pasted samples, the preview API and `flowhook map` share.

A sample is a SPEC §2 request object (recognised by `rawBody` or `receivedAt`),
used as it is, or a raw request `{method?, path?, headers?, query?,
contentType?, body}`. A raw request is held to what a live request could have
been, so that a mapping tried on it sees what it would see live: the live
limits, content types, header names and values HTTP can carry, one content
type, and query values that are text. What is wrong is a `SampleError`, which
each caller turns into its own answer (an HTTP status, a line on stderr).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from mapper.errors import RequestBodyError, UnsupportedContentType
from mapper.request import body_bytes, declared_charset, make_request, normalize_headers, text_codec, unreadable

SAMPLE_FIELDS = frozenset({"method", "path", "headers", "query", "contentType", "body"})
#: What a sample as `GET …/samples` lists it says about itself rather than about the request it holds.
SAMPLE_RECORD_FIELDS = frozenset({"id", "triggerId", "source", "createdAt"})
KiB, MiB = 1024, 1024 * 1024
# RFC 9110: a field name is a token; a value is visible ASCII, obs-text (what a server decodes as Latin-1),
# spaces and tabs, without the spaces around it, which HTTP parsers strip.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


class SampleError(ValueError):
    """What is wrong with a sample: `code` names the kind (`invalid_field`, `unknown_field`,
    `headers_too_large`, `body_too_large`, `unsupported_media_type`, `invalid_body`), `path` where
    in the sample it is (None: the request as a whole)."""

    def __init__(self, code: str, message: str, path: str | None = None) -> None:
        super().__init__(f"{message} (at {path})" if path else message)
        self.code = code
        self.message = message
        self.path = path


@dataclass(frozen=True)
class SampleLimits:
    """What a live request may send; the defaults are the server's (`ingress.settings.Settings`)."""

    max_header_bytes: int = 32 * KiB  # the path, query and headers together
    max_body_bytes: int = 1 * MiB


LIVE_LIMITS = SampleLimits()
#: The path of a raw request that gives none.
DEFAULT_PATH = "/hooks/preview"


def is_request_object(given: dict[str, Any]) -> bool:
    """A SPEC §2 request object (it has `rawBody` or `receivedAt`), which the mapping sees as it is."""
    return "rawBody" in given or "receivedAt" in given


def read_sample(given: Any, at: str = "$", limits: SampleLimits = LIVE_LIMITS) -> dict[str, Any]:
    """The mapping's `request` for a sample: a SPEC §2 request object as it is, anything else read as a raw
    request (`raw_request`). `at` is where `given` sits in what the caller read, so an error's `path`
    locates the problem there."""
    if not isinstance(given, dict):
        raise SampleError("invalid_field", "request must be an object", at)
    if is_request_object(given):
        return given
    try:
        raw = raw_request(given, DEFAULT_PATH, limits)
    except SampleError as error:
        raise SampleError(error.code, error.message, error.path and at + error.path.removeprefix("$")) from None
    return mapping_input(**raw)


def request_from_file(sample: Any) -> dict[str, Any]:
    """The mapping's `request` for a sample read from a file (`flowhook map`), which may also be a sample
    as `GET …/samples` lists it: its record fields (`id`, `triggerId`, …) are left out."""
    if isinstance(sample, dict) and not is_request_object(sample):
        sample = {name: value for name, value in sample.items() if name not in SAMPLE_RECORD_FIELDS}
    return read_sample(sample)


def mapping_input(
    method: str, path: str, headers: dict[str, str], query: str, content_type: str | None, body: str
) -> dict[str, Any]:
    """The mapping's `request` for a raw request (a stored sample's fields); a SampleError if the body
    does not parse as its content type says."""
    try:
        return make_request(method, path, headers, query, body_bytes(body, content_type), content_type)
    except UnsupportedContentType as error:
        raise SampleError("unsupported_media_type", str(error)) from None
    except RequestBodyError as error:
        raise SampleError("invalid_body", str(error)) from None


def raw_request(data: dict[str, Any], default_path: str, limits: SampleLimits = LIVE_LIMITS) -> dict[str, Any]:
    """A raw request `{method, path, headers, query, contentType, body}` checked, with defaults filled:
    `{method, path, headers, query, content_type, body}`, `headers` normalized, `query` a query string.

    `body` is the raw text, or any other JSON value (sent as JSON).
    """
    unknown = sorted(set(data) - SAMPLE_FIELDS)
    if unknown:
        message = f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(SAMPLE_FIELDS))}"
        raise SampleError("unknown_field", message, f"$.{unknown[0]}")
    method = _field(data, "method", lambda v: v in ("POST", "PUT"), "POST or PUT", "POST")
    path = _field(data, "path", lambda v: isinstance(v, str) and v.startswith("/"), "a path", default_path)
    headers = _headers(data)
    content_type = _content_type(data, headers)
    body = data.get("body", "")
    if not isinstance(body, str):
        body = orjson.dumps(body).decode()
        content_type = content_type or "application/json"
    if content_type is not None:
        headers.setdefault("content-type", content_type)  # a live request's content type is its header
    query = _query(data)
    _check_head_size(path, query, headers, limits.max_header_bytes)
    _check_readable(body, content_type, headers.get("content-encoding"), limits.max_body_bytes)
    return {
        "method": method,
        "path": path,
        "headers": headers,
        "query": query,
        "content_type": content_type,
        "body": body,
    }


def _field(data: dict[str, Any], name: str, check: Callable[[Any], bool], expected: str, default: Any) -> Any:
    """`data[name]` if present and passing `check`, `default` if absent; a SampleError naming the field otherwise."""
    value = data.get(name, default)
    if name in data and not check(value):
        raise SampleError("invalid_field", f"{name} must be {expected}", f"$.{name}")
    return value


def _headers(data: dict[str, Any]) -> dict[str, str]:
    """Normalized headers (lower-case names, repeats joined); an error at the first one HTTP could not carry."""
    given = _field(data, "headers", lambda v: isinstance(v, dict), "an object of strings", {})
    for name, value in given.items():
        at = _member_path("$.headers", name)
        if not _HEADER_NAME.fullmatch(name):
            message = "a header name must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
            raise SampleError("invalid_field", message, at)
        if not isinstance(value, str):
            raise SampleError("invalid_field", "a header value must be a string", at)
        _check_header_value(value, at)
    return normalize_headers((name, value.strip(" \t")) for name, value in given.items())


def _check_header_value(value: str, at: str) -> None:
    if not _HEADER_VALUE.fullmatch(value):
        message = "a header value may hold tabs and the characters from U+0020 to U+00FF except DEL, no line breaks"
        raise SampleError("invalid_field", message, at)


def _content_type(data: dict[str, Any], headers: dict[str, str]) -> str | None:
    """`contentType`, or the `Content-Type` header; null is the same as leaving it out. Given both, they must
    agree: a live request has one content type, which the mapping sees in both places."""
    given = _field(data, "contentType", lambda v: v is None or isinstance(v, str), "a string or null", None)
    if given is None:
        return headers.get("content-type")
    _check_header_value(given, "$.contentType")
    content_type: str = given.strip(" \t")
    if headers.get("content-type", content_type) != content_type:
        message = "contentType differs from the Content-Type header; give it in one place, or the same in both"
        raise SampleError("invalid_field", message, "$.contentType")
    return content_type


def _query(data: dict[str, Any]) -> str:
    """The query string: given as one, or an object of strings and lists of strings."""
    query = _field(data, "query", lambda v: isinstance(v, str | dict), "a string or an object", "")
    if isinstance(query, str):
        return query
    for name, value in query.items():
        at = _member_path("$.query", name)
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            if not isinstance(item, str):
                where = f"{at}[{index}]" if isinstance(value, list) else at
                message = "a query value must be a string or a list of strings (a query string holds only text)"
                raise SampleError("invalid_field", message, where)
    return urlencode(query, doseq=True)


def _check_head_size(path: str, query: str, headers: dict[str, str], limit: int) -> None:
    """Where a live request's URL and headers would exceed `max_header_bytes` (as `ingress.oversized` counts)."""
    parts = {
        "$.path": len(path.encode()),
        "$.query": len(query.encode()),
        "$.headers": sum(len(name) + len(value) for name, value in headers.items()),
    }
    if sum(parts.values()) > limit:
        message = f"the path, query and headers exceed {limit} bytes, the limit of a live request's URL and headers"
        raise SampleError("headers_too_large", message, max(parts, key=parts.__getitem__))


def _check_readable(body: str, content_type: str | None, content_encoding: str | None, limit: int) -> None:
    """A live request with this content type would be refused, its text could not be sent in its
    charset, or it would be over the body limit."""
    reason = unreadable(content_type, content_encoding)
    if reason is not None:
        raise SampleError("unsupported_media_type", reason)
    codec = text_codec(declared_charset(content_type))
    try:
        size = len(body.encode(codec or "utf-8"))
    except UnicodeEncodeError as error:
        message = f"the body has characters its charset cannot encode ({codec}, position {error.start})"
        raise SampleError("invalid_field", message, "$.body") from None
    if size > limit:
        message = f"the body has {size} bytes, more than the {limit} a live request may send"
        raise SampleError("body_too_large", message, "$.body")


def _member_path(base: str, key: str) -> str:
    """`$.headers.X-Id`, or `$.headers["bad name"]` for a key that would not read as one."""
    return f"{base}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{base}[{orjson.dumps(key).decode()}]"
