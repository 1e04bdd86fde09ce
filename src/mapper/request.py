"""Build the `request` object a mapping receives (SPEC §2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from mapper.errors import RequestBodyError, UnsupportedContentType

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

FORM = "application/x-www-form-urlencoded"


def media_type(content_type: str | None) -> str:
    """`Application/JSON; charset=utf-8` -> `application/json`."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def is_supported(media: str) -> bool:
    """JSON, form-urlencoded, text and XML; a missing type is read as text."""
    return (
        not media
        or is_json(media)
        or media == FORM
        or media.startswith("text/")
        or media in ("application/xml", "application/javascript")
        or media.endswith("+xml")
    )


def normalize_headers(headers: Headers) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ", "."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def flatten_query(query: Mapping[str, list[str] | str] | str) -> dict[str, str | list[str]]:
    """A parsed query string where a single value is a string, repeats a list."""
    parsed = parse_qs(query, keep_blank_values=True) if isinstance(query, str) else query
    return {
        key: values if isinstance(values, str) else values[0] if len(values) == 1 else list(values)
        for key, values in parsed.items()
    }


def parse_body(raw_body: bytes, media: str) -> tuple[Any, str]:
    """(body, rawBody text) for a supported media type."""
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestBodyError(f"body is not valid UTF-8 (byte {error.start})") from None
    if not raw_body.strip():
        return (None if is_json(media) else {} if media == FORM else text), text
    if is_json(media):
        try:
            return orjson.loads(raw_body), text
        except orjson.JSONDecodeError as error:
            raise RequestBodyError(f"body is not valid JSON: {error}") from None
    if media == FORM:
        return flatten_query(text), text
    return text, text


def make_request(
    method: str,
    path: str,
    headers: Headers,
    query: Mapping[str, list[str] | str] | str,
    raw_body: bytes,
    content_type: str | None,
    received_at: str | None = None,
) -> dict[str, Any]:
    """The mapping input; raises for an unsupported type (415) or bad body (400)."""
    return request_from(method, path, normalize_headers(headers), query, raw_body, content_type, received_at)


def request_from(
    method: str,
    path: str,
    headers: dict[str, str],
    query: Mapping[str, list[str] | str] | str,
    raw_body: bytes,
    content_type: str | None,
    received_at: str | None = None,
) -> dict[str, Any]:
    """`make_request` for headers already normalized (the ingress has them so from the ASGI scope)."""
    media = media_type(content_type)
    if not is_supported(media):
        raise UnsupportedContentType(f"content type {media!r} is not supported; send JSON, form-urlencoded or text")
    body, text = parse_body(raw_body, media)
    return {
        "method": method.upper(),
        "path": path,
        "headers": headers,
        "query": flatten_query(query),
        "body": body,
        "rawBody": text,
        "contentType": media,
        "receivedAt": received_at or now_iso(),
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
