"""Samples of a trigger: list them, paste one (capture arming lives with the triggers)."""

from __future__ import annotations

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
from mapper import RequestBodyError, UnsupportedContentType, make_request
from mapper.request import body_bytes, declared_charset, normalize_headers, text_codec, unreadable
from store import samples, triggers
from store.samples import Sample

SAMPLE_FIELDS = {"method", "path", "headers", "query", "contentType", "body"}


def raw_request(data: dict[str, Any], default_path: str) -> dict[str, Any]:
    """A raw request `{method, path, headers, query, contentType, body}` with defaults filled.

    `body` is the raw text, or any other JSON value (sent as JSON). Secret
    headers are redacted: samples are shown in the editor.
    """
    refuse_unknown(data, SAMPLE_FIELDS)
    headers = field(data, "headers", _string_map, "an object of strings", {})
    body = data.get("body", "")
    content_type = field(data, "contentType", lambda v: isinstance(v, str), "a string", None)
    if not isinstance(body, str):
        body = orjson.dumps(body).decode()
        content_type = content_type or "application/json"
    headers = normalize_headers(headers)
    content_type = content_type or headers.get("content-type")
    _check_readable(body, content_type, headers.get("content-encoding"))
    query = field(data, "query", lambda v: isinstance(v, str | dict), "a string or an object", "")
    if isinstance(query, dict):
        query = urlencode(query, doseq=True)
    return {
        "method": field(data, "method", lambda v: v in ("POST", "PUT"), "POST or PUT", "POST"),
        "path": field(data, "path", lambda v: isinstance(v, str) and v.startswith("/"), "a path", default_path),
        "headers": redact_headers(headers),
        "query": query,
        "content_type": content_type,
        "body": body,
    }


def _check_readable(body: str, content_type: str | None, content_encoding: str | None) -> None:
    """A live request with this content type would be refused (415), or its text could not be sent in its charset."""
    reason = unreadable(content_type, content_encoding)
    if reason is not None:
        raise ApiError(415, "unsupported_media_type", reason)
    codec = text_codec(declared_charset(content_type))
    try:
        body.encode(codec or "utf-8")
    except UnicodeEncodeError as error:
        message = f"the body has characters its charset cannot encode ({codec}, position {error.start})"
        raise ApiError(422, "invalid_field", message, path="$.body") from None


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


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
    raw = raw_request(await json_object(request), f"/hooks/{trigger.hook_id}")
    raw["query"] = redact_query(raw["query"])  # kept and shown like a captured sample's
    sample = samples.new_sample(trigger.id, "pasted", **raw)
    keep = services(request).settings.sample_retention
    await services(request).store.write(lambda conn: samples.insert_sample(conn, sample, keep=keep))
    return json_response(sample_view(sample), 201)


routes = [
    Route("/triggers/{trigger_id}/samples", list_samples, methods=["GET"]),
    Route("/triggers/{trigger_id}/samples", paste_sample, methods=["POST"]),
]
