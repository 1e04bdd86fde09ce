"""A pasted sample is something a live request could have been: its limits, its headers, one content type,
query values that are text. Preview reads an inline request the same way."""

from __future__ import annotations

from typing import Any

import pytest

from ingress.api.samples import live_limits
from ingress.settings import Settings
from mapper.sample import LIVE_LIMITS

pytestmark = pytest.mark.anyio
MAX_BODY = 1000
MAX_HEAD = 2000
LISTED_ONLY = ("id", "triggerId", "source", "createdAt")


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"max_body_bytes": MAX_BODY, "max_header_bytes": MAX_HEAD}


async def paste(flowhook, sample: dict[str, Any]) -> Any:
    trigger = await flowhook.trigger()
    return await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/samples", json=sample)


def refusal(response: Any) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["path"]


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ({"a": "1", "c": None}, "$.query.c"),
        ({"d": True}, "$.query.d"),
        ({"n": 1}, "$.query.n"),
        ({"a": {"b": 1}}, "$.query.a"),
        ({"e": ["1", None]}, "$.query.e[1]"),
        ({"odd key": 2}, '$.query["odd key"]'),
    ],
)
async def test_query_values_must_be_text(flowhook, query: dict[str, Any], path: str) -> None:
    """They were written Python's way: null as `None`, true as `True`, an object as its keys."""
    assert refusal(await paste(flowhook, {"body": "x", "query": query})) == (422, "invalid_field", path)
    preview = await flowhook.api.post(
        "/v1/default/mappings/preview",
        json={"mapping": {"kind": "passthrough"}, "request": {"body": "x", "query": query}},
    )
    assert refusal(preview) == (422, "invalid_field", "$.request" + path.removeprefix("$"))


async def test_query_strings_and_lists_of_strings_are_kept(flowhook) -> None:
    pasted = await paste(flowhook, {"body": "x", "query": {"a": "1", "e": ["2", "3"], "empty": ""}})
    assert (pasted.status_code, pasted.json()["query"]) == (201, "a=1&e=2&e=3&empty=")


async def test_two_different_content_types_are_refused(flowhook) -> None:
    """The mapping saw `headers["content-type"]` say JSON for a body read as text."""
    sample = {"body": "x", "headers": {"Content-Type": "application/json"}, "contentType": "text/plain"}
    refused = await paste(flowhook, sample)
    assert refusal(refused) == (422, "invalid_field", "$.contentType")
    assert "Content-Type header" in refused.json()["error"]["message"]


async def test_one_content_type_is_the_header_and_contenttype_alike(flowhook) -> None:
    same = await paste(flowhook, {"body": "x", "headers": {"Content-Type": "text/plain"}, "contentType": "text/plain"})
    assert (same.status_code, same.json()["contentType"], same.json()["headers"]) == (
        201,
        "text/plain",
        {"content-type": "text/plain"},
    )
    given = await paste(flowhook, {"body": "x", "contentType": "text/csv"})
    assert given.json()["headers"] == {"content-type": "text/csv"}
    json_body = await paste(flowhook, {"body": {"a": 1}})
    assert (json_body.json()["contentType"], json_body.json()["headers"]) == (
        "application/json",
        {"content-type": "application/json"},
    )


async def test_a_listed_sample_pastes_back_as_it_is(flowhook) -> None:
    """`contentType: null` (a request without a content type) is what a listed sample shows."""
    trigger = await flowhook.trigger()
    url = f"/v1/default/triggers/{trigger['id']}/samples"
    first = await flowhook.api.post(url, json={"body": "plain text", "contentType": None, "query": "a=1"})
    assert (first.status_code, first.json()["contentType"], first.json()["headers"]) == (201, None, {})
    listed = (await flowhook.api.get(url)).json()["data"][0]
    again = await flowhook.api.post(url, json={k: v for k, v in listed.items() if k not in LISTED_ONLY})
    assert again.status_code == 201, again.text
    assert {k: v for k, v in again.json().items() if k not in LISTED_ONLY} == {
        k: v for k, v in listed.items() if k not in LISTED_ONLY
    }


async def test_a_body_over_the_live_limit_is_413(flowhook) -> None:
    assert (await paste(flowhook, {"body": "x" * MAX_BODY})).status_code == 201  # the limit is inclusive
    assert refusal(await paste(flowhook, {"body": "x" * (MAX_BODY + 1)})) == (413, "body_too_large", "$.body")
    # Counted in the bytes of its charset, as a live request's are.
    assert refusal(await paste(flowhook, {"body": "é" * (MAX_BODY // 2 + 1)}))[0] == 413
    latin = {"body": "é" * MAX_BODY, "contentType": "text/plain; charset=iso-8859-1"}
    assert (await paste(flowhook, latin)).status_code == 201


@pytest.mark.parametrize(
    ("sample", "path"),
    [
        ({"path": "/" + "p" * MAX_HEAD}, "$.path"),
        ({"query": "q=" + "v" * MAX_HEAD}, "$.query"),
        ({"headers": {f"x-{n}": "v" * 100 for n in range(20)}}, "$.headers"),
    ],
)
async def test_a_path_query_and_headers_over_the_live_limit_are_431(
    flowhook, sample: dict[str, Any], path: str
) -> None:
    assert refusal(await paste(flowhook, {"body": "x", **sample})) == (431, "headers_too_large", path)


@pytest.mark.parametrize(
    ("headers", "path"),
    [
        ({"": "v"}, '$.headers[""]'),
        ({"bad name": "v"}, '$.headers["bad name"]'),
        ({"x\r\ny": "v"}, '$.headers["x\\r\\ny"]'),
        ({"X-Ok": "a\r\nInjected: 1"}, "$.headers.X-Ok"),
        ({"X-Ok": "smile 😀"}, "$.headers.X-Ok"),
        ({"X-Ok": None}, "$.headers.X-Ok"),
    ],
)
async def test_headers_no_http_request_can_carry_are_refused(flowhook, headers: dict[str, Any], path: str) -> None:
    assert refusal(await paste(flowhook, {"body": "x", "headers": headers})) == (422, "invalid_field", path)


async def test_header_values_are_kept_as_an_http_parser_reads_them(flowhook) -> None:
    pasted = await paste(flowhook, {"body": "x", "headers": {"X-Tab": " a\tb ", "X-Latin": "café"}})
    assert pasted.json()["headers"] == {"x-tab": "a\tb", "x-latin": "café"}


@pytest.mark.parametrize("name", ["sample_retention", "request_log_retention", "sandbox_workers"])
@pytest.mark.parametrize("value", [0, -1])
def test_a_retention_or_worker_count_below_one_is_refused(name: str, value: int) -> None:
    """A retention of 0 deleted each sample as it was stored: 201 for a paste, a capture's `sampleId`
    for nothing."""
    with pytest.raises(ValueError, match=f"{name} \\(FLOWHOOK_{name.upper()}\\) must be at least 1, not {value}"):
        Settings(**{name: value})


async def test_a_preview_request_is_held_to_the_servers_limits(flowhook) -> None:
    preview = await flowhook.api.post(
        "/v1/default/mappings/preview",
        json={"mapping": {"kind": "passthrough"}, "request": {"body": "x" * (MAX_BODY + 1)}},
    )
    assert refusal(preview) == (413, "body_too_large", "$.request.body")


def test_the_mapper_holds_a_sample_to_the_server_default_limits() -> None:
    """`flowhook map` has no server settings; it reads a sample within the limits a default server sets."""
    defaults = Settings()
    assert live_limits(defaults) == LIVE_LIMITS


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        (
            "application/json",
            "{not json",
            "body is not valid JSON: unexpected character, expected a string key: line 1 column 2",
        ),
        ("application/json", "", "body is empty; a JSON value was expected"),
        ("application/x-www-form-urlencoded", "a=%ff", "a form field's percent-escapes are not valid UTF-8"),
    ],
)
async def test_a_body_that_does_not_parse_as_its_content_type_is_refused_as_the_hook_refuses_it(
    flowhook, content_type: str, body: str, says: str
) -> None:
    """A sample the hook would answer 400 before any mapping runs previews nothing a live request runs."""
    trigger = await flowhook.trigger()
    url = f"/v1/default/triggers/{trigger['id']}/samples"
    refused = await flowhook.api.post(url, json={"body": body, "contentType": content_type})
    assert refusal(refused) == (400, "invalid_body", "$.body")
    assert says in refused.json()["error"]["message"]
    live = await flowhook.post(trigger, body, content_type=content_type)
    assert (live.status_code, live.json()["error"]["code"]) == (400, "invalid_body")
    assert (await flowhook.api.get(url)).json()["data"] == []
