"""make_request: the `request` object of SPEC §2 built from an HTTP request."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mapper import RequestBodyError, UnsupportedContentType, make_request
from mapper.request import body_bytes, body_text, exact_text, json_request

RECEIVED_AT = "2024-05-01T12:00:00.000Z"


def build(raw_body: bytes, content_type: str | None, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "method": "POST",
        "path": "/hooks/test",
        "headers": {},
        "query": "",
        "raw_body": raw_body,
        "content_type": content_type,
        "received_at": RECEIVED_AT,
    }
    arguments.update(overrides)
    return make_request(**arguments)


def test_json_body_builds_the_whole_request_object() -> None:
    request = build(
        b'{"customer": {"id": 42, "tags": ["a"]}}',
        "application/json",
        method="post",
        headers={"Content-Type": "application/json"},
        query="page=2",
    )
    assert request == {
        "method": "POST",
        "path": "/hooks/test",
        "headers": {"content-type": "application/json"},
        "query": {"page": "2"},
        "body": {"customer": {"id": 42, "tags": ["a"]}},
        "rawBody": '{"customer": {"id": 42, "tags": ["a"]}}',
        "contentType": "application/json",
        "receivedAt": RECEIVED_AT,
    }


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON; charset=utf-8", "application/vnd.api+json", "application/cloudevents+json"],
)
def test_json_and_plus_json_media_types_are_parsed(content_type: str) -> None:
    request = build(b'[1, "two", null]', content_type)
    assert request["body"] == [1, "two", None]
    assert request["contentType"] == content_type.split(";")[0].lower()


@pytest.mark.parametrize("charset", ["utf-8", "utf-16-le"])
def test_a_byte_order_mark_before_json_is_ignored_and_kept_in_the_raw_body(charset: str) -> None:
    raw_body = '\ufeff{"user": "u1"}'.encode(charset)
    request = make_request("POST", "/", {}, "", raw_body, f"application/json; charset={charset}")
    assert request["body"] == {"user": "u1"}
    assert request["rawBody"] == '\ufeff{"user": "u1"}'  # the text as sent


def test_json_scalars_are_bodies_too() -> None:
    assert build(b"42", "application/json")["body"] == 42
    assert build(b'"text"', "application/json")["body"] == "text"


def test_slack_style_form_body_is_a_dict_with_the_payload_string() -> None:
    raw = b"payload=%7B%22type%22%3A%22block_actions%22%2C%22user%22%3A%7B%22id%22%3A%22U123%22%7D%7D&token=abc"
    request = build(raw, "application/x-www-form-urlencoded")
    assert request["body"] == {"payload": '{"type":"block_actions","user":{"id":"U123"}}', "token": "abc"}
    assert request["rawBody"] == raw.decode()
    assert request["contentType"] == "application/x-www-form-urlencoded"


def test_twilio_style_form_body_decodes_plus_and_percent_and_keeps_blanks() -> None:
    raw = b"Body=Hello+there%21&From=%2B15551234567&MediaUrl0=&To=%2B15557654321"
    request = build(raw, "application/x-www-form-urlencoded; charset=utf-8")
    assert request["body"] == {"Body": "Hello there!", "From": "+15551234567", "MediaUrl0": "", "To": "+15557654321"}


def test_form_fields_repeated_become_lists() -> None:
    request = build(b"tag=a&tag=b&one=1", "application/x-www-form-urlencoded")
    assert request["body"] == {"tag": ["a", "b"], "one": "1"}


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/csv; charset=utf-8", "application/xml", "application/atom+xml"]
)
def test_text_like_bodies_stay_text(content_type: str) -> None:
    request = build("<a>ünï</a>\n".encode(), content_type)
    assert request["body"] == request["rawBody"] == "<a>ünï</a>\n"


def test_missing_content_type_reads_the_body_as_text() -> None:
    request = build(b'{"looks": "like json"}', None)
    assert request["body"] == '{"looks": "like json"}'
    assert request["contentType"] == ""


@pytest.mark.parametrize("raw_body", [b"", b"  \n"])
def test_an_empty_json_body_is_a_request_body_error(raw_body: bytes) -> None:
    """Not JSON (SPEC §3: an unparseable body is 400), and a mapping could not tell it from `null`."""
    with pytest.raises(RequestBodyError, match="body is empty"):
        build(raw_body, "application/json")


def test_empty_text_body_is_the_empty_string() -> None:
    request = build(b"", "text/plain")
    assert request["body"] == ""
    assert request["rawBody"] == ""


def test_empty_form_body_is_an_empty_dict() -> None:
    assert build(b"", "application/x-www-form-urlencoded")["body"] == {}


@pytest.mark.parametrize("raw_body", [b"{", b'{"a": 1,}', b"{'a': 1}", b"NaN", b"[1] [2]"])
def test_invalid_json_raises_request_body_error(raw_body: bytes) -> None:
    with pytest.raises(RequestBodyError, match="not valid JSON"):
        build(raw_body, "application/json")


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain", None])
def test_invalid_utf8_raises_request_body_error(content_type: str | None) -> None:
    with pytest.raises(RequestBodyError, match="UTF-8"):
        build(b'{"name": "\xff\xfe"}', content_type)


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "multipart/form-data; boundary=x", "image/png", "application/pdf"]
)
def test_unsupported_content_type_raises(content_type: str) -> None:
    with pytest.raises(UnsupportedContentType, match=re.escape(content_type.split(";")[0])):
        build(b"payload", content_type)


def test_request_errors_are_value_errors_but_distinct() -> None:
    assert issubclass(RequestBodyError, ValueError)
    assert issubclass(UnsupportedContentType, ValueError)
    assert not issubclass(RequestBodyError, UnsupportedContentType)
    assert not issubclass(UnsupportedContentType, RequestBodyError)


def test_header_names_are_lower_cased_and_values_kept() -> None:
    request = build(b"", None, headers={"X-Request-ID": "Abc-1", "Stripe-Signature": "t=1,v1=XYZ"})
    assert request["headers"] == {"x-request-id": "Abc-1", "stripe-signature": "t=1,v1=XYZ"}


def test_repeated_headers_are_joined_in_order_whatever_their_case() -> None:
    headers = [
        ("Accept", "text/html"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("accept", "application/json"),
        ("ACCEPT", "*/*"),
    ]
    request = build(b"", None, headers=headers)
    assert request["headers"] == {"accept": "text/html, application/json, */*", "x-forwarded-for": "10.0.0.1"}


def test_query_string_single_values_are_strings_repeats_are_lists() -> None:
    request = build(b"", None, query="a=1&b=2&b=3&empty=&s=hello+world%21")
    assert request["query"] == {"a": "1", "b": ["2", "3"], "empty": "", "s": "hello world!"}


def test_query_dict_of_lists_is_flattened() -> None:
    request = build(b"", None, query={"a": ["1"], "b": ["2", "3"]})
    assert request["query"] == {"a": "1", "b": ["2", "3"]}


def test_query_dict_of_plain_strings_is_kept() -> None:
    assert build(b"", None, query={"page": "10"})["query"] == {"page": "10"}


def test_empty_query_is_an_empty_dict() -> None:
    assert build(b"", None, query="")["query"] == {}
    assert build(b"", None, query={})["query"] == {}


def test_received_at_defaults_to_now_in_utc_iso_format() -> None:
    request = build(b"", None, received_at=None)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", request["receivedAt"])


def test_a_declared_charset_decodes_text_and_forms() -> None:
    text = build("Grüße".encode("iso-8859-1"), 'text/plain; charset="ISO-8859-1"')
    assert (text["body"], text["rawBody"]) == ("Grüße", "Grüße")
    form = build(b"name=Ren%E9&city=K\xf6ln", "application/x-www-form-urlencoded; charset=windows-1252")
    assert form["body"] == {"name": "René", "city": "Köln"}
    assert build('{"name": "Zoë"}'.encode("utf-16"), "application/json; charset=utf-16")["body"] == {"name": "Zoë"}


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain; charset=klingon",
        "application/json; charset=base64",
        "text/plain; charset=undefined",
        "application/json; charset=unicode_escape",  # Python's, not a charset: it would decode \u0041 itself
        "text/plain; charset=idna",
    ],
)
def test_charsets_that_are_not_text_encodings_are_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedContentType, match="charset"):
        build(b"hello", content_type)


def test_undecodable_bytes_and_form_escapes_are_request_body_errors() -> None:
    with pytest.raises(RequestBodyError, match="not valid ascii"):
        build("é".encode(), "text/plain; charset=ascii")
    # Once a replacement character the mapping would have taken for data; now a 400.
    with pytest.raises(RequestBodyError, match="percent-escapes are not valid UTF-8"):
        build(b"name=Ren%E9", "application/x-www-form-urlencoded")


def test_kept_bodies_round_trip_through_their_declared_charset() -> None:
    raw = "name=René".encode("iso-8859-1")
    for content_type in ("text/plain; charset=iso-8859-1", "text/plain"):
        kept = body_text(raw if "iso" in content_type else raw.decode("iso-8859-1").encode(), content_type)
        assert kept == "name=René"
        assert body_text(body_bytes(kept, content_type), content_type) == kept
    assert body_text(b"\xff", "text/plain; charset=klingon") == "\ufffd"  # an unknown charset is kept as UTF-8


@pytest.mark.parametrize("charset", ["utf-16", "utf-32"])
def test_utf16_and_utf32_without_a_byte_order_mark_are_big_endian(charset: str) -> None:
    """RFC 2781: no mark, big-endian. Python's piecewise decoders refused such a body with an error no
    caller expected (a 500 for the webhook, and no log entry); whole, they read it in the machine's order."""
    content_type = f"application/json; charset={charset}"
    unmarked = '{"a": "é"}'.encode(f"{charset}-be")
    assert build(unmarked, content_type)["body"] == {"a": "é"}
    assert body_text(unmarked, content_type) == exact_text(unmarked, content_type) == '{"a": "é"}'
    assert body_text(unmarked[:-1], content_type, cut=True) == '{"a": "é"'  # the last character cut off
    marked = '{"a": 1}'.encode(charset)  # with the machine's mark (little-endian here), read as marked
    assert build(marked, content_type)["body"] == {"a": 1}
    with pytest.raises(RequestBodyError, match=f"body is not valid {charset}"):
        build(b'{"a":1}', content_type)  # ASCII bytes declared as UTF-16/32
    assert exact_text(b'{"a":1}', content_type) is None  # kept with replacement characters, not an error


def test_a_json_body_held_in_process_is_the_request_a_posted_one_would_be() -> None:
    """Events, Marketo leads and SFMC executes reach their mappings as JSON posts, as a webhook would."""
    body = {"user": "u1", "tags": ["a"]}
    posted = make_request(
        "POST", "/x", {}, "", b'{"user":"u1","tags":["a"]}', "application/json", "2026-01-01T00:00:00Z"
    )
    assert json_request("/x", body, "2026-01-01T00:00:00Z") == posted
    signed = json_request("/x", body, "2026-01-01T00:00:00Z", headers={"x-a": "1"}, raw_body="eyJ…")
    assert (signed["headers"], signed["rawBody"], signed["body"]) == ({"x-a": "1"}, "eyJ…", body)
