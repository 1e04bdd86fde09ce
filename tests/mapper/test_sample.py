"""mapper.sample: a sample (request object or raw request) as the `request` a mapping sees, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from mapper import SampleError, SampleLimits, read_sample, request_from_file
from mapper.sample import LIVE_LIMITS, raw_request

REQUEST_OBJECT = {"method": "POST", "body": {"a": 1}, "rawBody": '{"a": 1}', "receivedAt": "2024-01-01T00:00:00Z"}


def refusal(given: Any, at: str = "$", limits: SampleLimits = LIVE_LIMITS) -> tuple[str, str | None]:
    with pytest.raises(SampleError) as raised:
        read_sample(given, at, limits)
    return raised.value.code, raised.value.path


def test_a_request_object_is_used_as_it_is() -> None:
    assert read_sample(REQUEST_OBJECT) is REQUEST_OBJECT


def test_a_raw_request_gets_the_defaults_of_a_live_one() -> None:
    given = {"headers": {"X-Id": " r1 "}, "query": {"many": ["a", "b"]}, "body": {"user": 7}}
    assert raw_request(given, "/hooks/abc") == {
        "method": "POST",
        "path": "/hooks/abc",
        "headers": {"x-id": "r1", "content-type": "application/json"},
        "query": "many=a&many=b",
        "content_type": "application/json",
        "body": '{"user":7}',
    }
    request = read_sample(given)
    assert (request["path"], request["body"], request["query"]) == ("/hooks/preview", {"user": 7}, {"many": ["a", "b"]})
    assert request["headers"] == {"x-id": "r1", "content-type": "application/json"}


@pytest.mark.parametrize(
    ("given", "code", "path"),
    [
        ("text", "invalid_field", "$"),
        ({"bogus": 1}, "unknown_field", "$.bogus"),
        ({"method": "GET"}, "invalid_field", "$.method"),
        ({"headers": {"bad name": "v"}}, "invalid_field", '$.headers["bad name"]'),
        ({"headers": {"x": "a\nb"}}, "invalid_field", "$.headers.x"),
        ({"contentType": "text/plain", "headers": {"content-type": "text/csv"}}, "invalid_field", "$.contentType"),
        ({"query": {"n": [1]}}, "invalid_field", "$.query.n[0]"),
        ({"contentType": "image/png", "body": "x"}, "unsupported_media_type", None),
        ({"contentType": "text/plain; charset=us-ascii", "body": "café"}, "invalid_field", "$.body"),
        ({"contentType": "application/json", "body": "{bad"}, "invalid_body", None),
    ],
)
def test_what_a_live_request_could_not_be_is_refused_where_it_is(given: Any, code: str, path: str | None) -> None:
    assert refusal(given) == (code, path)


def test_the_live_limits_hold() -> None:
    limits = SampleLimits(max_header_bytes=100, max_body_bytes=10)
    assert refusal({"body": "x" * 11}, limits=limits) == ("body_too_large", "$.body")
    assert refusal({"headers": {"x-big": "v" * 100}}, limits=limits) == ("headers_too_large", "$.headers")


def test_a_path_is_located_where_the_sample_sits() -> None:
    assert refusal({"method": 5}, at="$.request") == ("invalid_field", "$.request.method")
    assert refusal([], at="$.request") == ("invalid_field", "$.request")


def test_the_message_names_the_place() -> None:
    with pytest.raises(SampleError, match=r"^method must be POST or PUT \(at \$\.method\)$"):
        read_sample({"method": 5})


def test_a_file_may_hold_a_sample_as_the_api_lists_it() -> None:
    listed = {"id": "smp_1", "triggerId": "trg_1", "source": "pasted", "createdAt": "2026-01-01T00:00:00Z", "body": "x"}
    assert request_from_file(listed)["rawBody"] == "x"
    with pytest.raises(SampleError, match="unknown field 'createdAt'"):
        read_sample(listed)
