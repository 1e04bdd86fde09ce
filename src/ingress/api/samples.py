"""Samples of a trigger: list them, paste one (capture arming lives with the triggers).

A pasted sample is held to what a live request could have been, so that a
mapping previewed on it sees what it would see live: the live limits (413
`body_too_large`, 431 `headers_too_large`), content types (415), header names
and values HTTP can carry, one content type, and query values that are text.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, field, json_object, read_found, refuse_unknown, services
from ingress.api.views import sample_view
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.redaction import redact_headers, redact_query
from ingress.settings import Settings
from mapper import RequestBodyError, UnsupportedContentType, make_request
from mapper.request import body_bytes, declared_charset, normalize_headers, text_codec, unreadable
from store import samples, triggers
from store.samples import Sample

SAMPLE_FIELDS = {"method", "path", "headers", "query", "contentType", "body"}
DEFAULT_SETTINGS = Settings()
# RFC 9110: a field name is a token; a value is visible ASCII, obs-text (what a server decodes as Latin-1),
# spaces and tabs, without the spaces around it, which HTTP parsers strip.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def raw_request(data: dict[str, Any], default_path: str, settings: Settings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """A raw request `{method, path, headers, query, contentType, body}` with defaults filled.

    `body` is the raw text, or any other JSON value (sent as JSON). Secret
    headers are redacted: samples are shown in the editor. `settings` give
    the limits a live request is held to.
    """
    refuse_unknown(data, SAMPLE_FIELDS)
    method = field(data, "method", lambda v: v in ("POST", "PUT"), "POST or PUT", "POST")
    path = field(data, "path", lambda v: isinstance(v, str) and v.startswith("/"), "a path", default_path)
    headers = _headers(data)
    content_type = _content_type(data, headers)
    body = data.get("body", "")
    if not isinstance(body, str):
        body = orjson.dumps(body).decode()
        content_type = content_type or "application/json"
    if content_type is not None:
        headers.setdefault("content-type", content_type)  # a live request's content type is its header
    query = _query(data)
    _check_head_size(path, query, headers, settings.max_header_bytes)
    _check_readable(body, content_type, headers.get("content-encoding"), settings.max_body_bytes)
    return {
        "method": method,
        "path": path,
        "headers": redact_headers(headers),
        "query": query,
        "content_type": content_type,
        "body": body,
    }


def _headers(data: dict[str, Any]) -> dict[str, str]:
    """Normalized headers (lower-case names, repeats joined); a 422 at the first one HTTP could not carry."""
    given = field(data, "headers", lambda v: isinstance(v, dict), "an object of strings", {})
    for name, value in given.items():
        at = _member_path("$.headers", name)
        if not _HEADER_NAME.fullmatch(name):
            message = "a header name must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
            raise ApiError(422, "invalid_field", message, path=at)
        if not isinstance(value, str):
            raise ApiError(422, "invalid_field", "a header value must be a string", path=at)
        _check_header_value(value, at)
    return normalize_headers((name, value.strip(" \t")) for name, value in given.items())


def _check_header_value(value: str, at: str) -> None:
    if not _HEADER_VALUE.fullmatch(value):
        message = "a header value may hold tabs and the characters from U+0020 to U+00FF except DEL, no line breaks"
        raise ApiError(422, "invalid_field", message, path=at)


def _content_type(data: dict[str, Any], headers: dict[str, str]) -> str | None:
    """`contentType`, or the `Content-Type` header; null is the same as leaving it out. Given both, they must
    agree: a live request has one content type, which the mapping sees in both places."""
    given = field(data, "contentType", lambda v: v is None or isinstance(v, str), "a string or null", None)
    if given is None:
        return headers.get("content-type")
    _check_header_value(given, "$.contentType")
    content_type: str = given.strip(" \t")
    if headers.get("content-type", content_type) != content_type:
        message = "contentType differs from the Content-Type header; give it in one place, or the same in both"
        raise ApiError(422, "invalid_field", message, path="$.contentType")
    return content_type


def _query(data: dict[str, Any]) -> str:
    """The query string: given as one, or an object of strings and lists of strings."""
    query = field(data, "query", lambda v: isinstance(v, str | dict), "a string or an object", "")
    if isinstance(query, str):
        return query
    for name, value in query.items():
        at = _member_path("$.query", name)
        values = value if isinstance(value, list) else [value]
        for index, item in enumerate(values):
            if not isinstance(item, str):
                where = f"{at}[{index}]" if isinstance(value, list) else at
                message = "a query value must be a string or a list of strings (a query string holds only text)"
                raise ApiError(422, "invalid_field", message, path=where)
    return urlencode(query, doseq=True)


def _check_head_size(path: str, query: str, headers: dict[str, str], limit: int) -> None:
    """431 where a live request's URL and headers would exceed `max_header_bytes` (as `ingress.oversized` counts)."""
    parts = {
        "$.path": len(path.encode()),
        "$.query": len(query.encode()),
        "$.headers": sum(len(name) + len(value) for name, value in headers.items()),
    }
    if sum(parts.values()) > limit:
        message = f"the path, query and headers exceed {limit} bytes, the limit of a live request's URL and headers"
        raise ApiError(431, "headers_too_large", message, path=max(parts, key=parts.__getitem__))


def _check_readable(body: str, content_type: str | None, content_encoding: str | None, limit: int) -> None:
    """A live request with this content type would be refused (415), its text could not be sent in its
    charset (422), or it would be over the body limit (413)."""
    reason = unreadable(content_type, content_encoding)
    if reason is not None:
        raise ApiError(415, "unsupported_media_type", reason)
    codec = text_codec(declared_charset(content_type))
    try:
        size = len(body.encode(codec or "utf-8"))
    except UnicodeEncodeError as error:
        message = f"the body has characters its charset cannot encode ({codec}, position {error.start})"
        raise ApiError(422, "invalid_field", message, path="$.body") from None
    if size > limit:
        message = f"the body has {size} bytes, more than the {limit} a live request may send"
        raise ApiError(413, "body_too_large", message, path="$.body")


def _member_path(base: str, key: str) -> str:
    """`$.headers.X-Id`, or `$.headers["bad name"]` for a key that would not read as one."""
    return f"{base}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{base}[{orjson.dumps(key).decode()}]"


def sample_input(sample: Sample) -> dict[str, Any]:
    """The mapping's `request` for a sample (400 if its body does not parse)."""
    return mapping_input(sample.method, sample.path, sample.headers, sample.query, sample.content_type, sample.body)


def mapping_input(
    method: str, path: str, headers: dict[str, str], query: str, content_type: str | None, body: str
) -> dict[str, Any]:
    try:
        return make_request(method, path, headers, query, body_bytes(body, content_type), content_type)
    except UnsupportedContentType as error:
        raise ApiError(415, "unsupported_media_type", str(error)) from None
    except RequestBodyError as error:
        raise ApiError(400, "invalid_body", str(error)) from None


@admin_only
async def list_samples(request: Request) -> Response:
    env = await environment(request)
    trigger_id = request.path_params["trigger_id"]
    await read_found(request, "trigger", trigger_id, lambda conn: triggers.get_trigger(conn, env, trigger_id))
    found = await services(request).store.read(lambda conn: samples.list_samples(conn, trigger_id))
    return json_response({"data": [sample_view(sample) for sample in found]})


@admin_only
async def paste_sample(request: Request) -> Response:
    env = await environment(request)
    trigger_id = request.path_params["trigger_id"]
    trigger = await read_found(request, "trigger", trigger_id, lambda conn: triggers.get_trigger(conn, env, trigger_id))
    settings = services(request).settings
    raw = raw_request(await json_object(request), f"/hooks/{trigger.hook_id}", settings)
    raw["query"] = redact_query(raw["query"])  # kept and shown like a captured sample's
    sample = samples.new_sample(trigger.id, "pasted", **raw)
    await services(request).store.write(
        lambda conn: samples.insert_sample(conn, sample, keep=settings.sample_retention)
    )
    return json_response(sample_view(sample), 201)


routes = [
    Route("/triggers/{trigger_id}/samples", list_samples, methods=["GET"]),
    Route("/triggers/{trigger_id}/samples", paste_sample, methods=["POST"]),
]
