"""Build the `request` object a mapping receives (SPEC §2)."""

from __future__ import annotations

import codecs
import functools
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import orjson

from mapper.errors import RequestBodyError, UnsupportedContentType

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

FORM = "application/x-www-form-urlencoded"
UTF8 = "utf-8"
# Python's codecs that turn text into other text (escapes, domain names) rather than name a charset.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined"})
_QUOTED_MAX = 64  # characters of a refused content type quoted back


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


def declared_charset(content_type: str | None) -> str | None:
    """The `charset` parameter of a content type (`text/plain; charset="ISO-8859-1"` -> `iso-8859-1`), if any."""
    if not content_type or ";" not in content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() or None
    return None


@functools.lru_cache(maxsize=64)
def text_codec(charset: str | None) -> str | None:
    """The Python codec for a declared charset (UTF-8 when none is declared); None if Python has no
    text encoding of that name (`base64` and `zlib` are codecs too, but not text encodings)."""
    if charset is None:
        return UTF8
    try:
        b"a".decode(charset, errors="replace")  # CPython skips the lookup for empty input
    except (LookupError, UnicodeError):  # unknown, or not a text encoding (`base64`, `zlib`)
        return None
    return None if codecs.lookup(charset).name in _NOT_CHARSETS else charset


def unreadable(content_type: str | None, content_encoding: str | None = None) -> str | None:
    """Why a body of this content type (and `Content-Encoding`) cannot be read (HTTP 415), or None if it can.

    A compressed body is refused rather than inflated: its size limit would apply to the compressed bytes.
    """
    if content_encoding and content_encoding.strip().lower() != "identity":
        return f"content encoding {content_encoding[:_QUOTED_MAX]!r} is not supported; send the body uncompressed"
    media = media_type(content_type)
    if not is_supported(media):
        return f"content type {media[:_QUOTED_MAX]!r} is not supported; send JSON, form-urlencoded or text"
    charset = declared_charset(content_type)
    if text_codec(charset) is None:
        return f"charset {(charset or '')[:_QUOTED_MAX]!r} is not supported; send UTF-8 or another standard charset"
    return None


def body_text(raw_body: bytes, content_type: str | None, *, cut: bool = False) -> str:
    """The body as text to keep (request log, samples): decoded as declared, undecodable bytes replaced.

    `cut`: `raw_body` is the beginning of a longer body, so a character it ends in the middle of is left
    out rather than shown as a replacement character.
    """
    return _decoded(raw_body, content_type, cut, "replace")


def exact_text(raw_body: bytes, content_type: str | None, *, cut: bool = False) -> str | None:
    """`body_text` if every byte decodes, so that `body_bytes` gives the body back; else None."""
    try:
        return _decoded(raw_body, content_type, cut, "strict")
    except UnicodeDecodeError:
        return None


def _decoded(raw_body: bytes, content_type: str | None, cut: bool, errors: str) -> str:
    codec = body_codec(raw_body, text_codec(declared_charset(content_type)) or UTF8)
    return codecs.getincrementaldecoder(codec)(errors=errors).decode(raw_body, final=not cut)


def body_bytes(text: str, content_type: str | None) -> bytes:
    """A kept body back as the bytes its sender sent (replays, samples): encoded as declared."""
    return text.encode(text_codec(declared_charset(content_type)) or UTF8, errors="replace")


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


BYTE_ORDER_MARK = "\ufeff"
#: orjson's own nesting limit: a deeper body is valid JSON that no mapping can be given (docs/webhooks.md).
#: The byte order marks of UTF-16 and UTF-32: without one, RFC 2781 (§4.3) reads the text as big-endian.
_UNMARKED = {"utf-16": (codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE), "utf-32": (codecs.BOM_UTF32_BE, codecs.BOM_UTF32_LE)}


def body_codec(raw_body: bytes, codec: str) -> str:
    """`codec` as it reads this body: UTF-16 or UTF-32 without a byte order mark is big-endian (RFC 2781), where
    Python's decoders take the machine's order, or refuse the body outright when reading it in pieces."""
    marks = _UNMARKED.get(codecs.lookup(codec).name)
    if marks is None or raw_body.startswith(marks):
        return codec
    return f"{codecs.lookup(codec).name}-be"


READABLE_DEPTH = 1024


def nested_past_reading(error: orjson.JSONDecodeError) -> bool:
    """Whether orjson refused a document only for nesting past READABLE_DEPTH: valid JSON, not a syntax error."""
    return str(error).startswith("depth limit exceeded")


def parse_body(raw_body: bytes, media: str, codec: str = UTF8) -> tuple[Any, str]:
    """(body, rawBody text) for a supported media type whose text is in `codec` (see `text_codec`).

    A form's percent-escapes are decoded with the same codec; an escape that
    does not decode is a 400, like any other undecodable byte, rather than a
    replacement character the mapping would take for data.
    """
    encoding = "UTF-8" if codec == UTF8 else codec  # as messages name it
    try:
        text = raw_body.decode(body_codec(raw_body, codec))
    except UnicodeError as error:
        where = f" (byte {error.start})" if isinstance(error, UnicodeDecodeError) else ""
        raise RequestBodyError(f"body is not valid {encoding}{where}") from None
    if is_json(media) and not text.strip():  # not JSON, and not to be mistaken for a literal `null`
        raise RequestBodyError("body is empty; a JSON value was expected")
    if media == FORM and not text.strip():
        return {}, text
    if is_json(media):
        # RFC 8259 §8.1: a parser may ignore a byte order mark; some senders (.NET's) put one before JSON.
        source = text[1:] if text.startswith(BYTE_ORDER_MARK) else raw_body if codec == UTF8 else text
        try:
            return orjson.loads(source), text
        except orjson.JSONDecodeError as error:
            if nested_past_reading(error):
                raise RequestBodyError(
                    f"body is nested deeper than {READABLE_DEPTH} levels, more than is read"
                ) from None
            raise RequestBodyError(f"body is not valid JSON: {error}") from None
    if media == FORM:
        try:
            return flatten_query(parse_qs(text, keep_blank_values=True, encoding=codec, errors="strict")), text
        except UnicodeError:
            raise RequestBodyError(f"a form field's percent-escapes are not valid {encoding}") from None
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
    reason = unreadable(content_type)
    if reason is not None:
        raise UnsupportedContentType(reason)
    media = media_type(content_type)
    codec = text_codec(declared_charset(content_type))
    assert codec is not None  # `unreadable` refused the others
    body, text = parse_body(raw_body, media, codec)
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


def json_request(
    path: str, body: Any, received_at: str, *, headers: dict[str, str] | None = None, raw_body: str | None = None
) -> dict[str, Any]:
    """The request for a JSON body the service holds rather than received as bytes (an event for its
    triggers, a Marketo lead, an SFMC execute's decoded JWT): a POST, `rawBody` the body serialized unless
    the sender's text is given."""
    return {
        "method": "POST",
        "path": path,
        "headers": headers or {},
        "query": {},
        "body": body,
        "rawBody": orjson.dumps(body).decode() if raw_body is None else raw_body,
        "contentType": "application/json",
        "receivedAt": received_at,
    }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
