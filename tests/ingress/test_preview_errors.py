"""`POST /v1/{env}/mappings/preview` refuses what it cannot use with a 4xx whose `path` points into the preview body."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio

URL = "/v1/default/mappings/preview"
MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.user"}}


@pytest.mark.parametrize("sample_id", [5, None, {"a": 1}, ["smp_1"]])
async def test_a_sample_id_that_is_not_a_string_is_422(flowhook: Any, sample_id: Any) -> None:
    """It was looked up as its Python text and answered `404 no sample "{'a': 1}"`."""
    answer = await flowhook.api.post(URL, json={"mapping": MAPPING, "sampleId": sample_id})
    assert answer.status_code == 422
    assert answer.json() == {
        "error": {"code": "invalid_field", "message": "sampleId must be a string", "path": "$.sampleId"}
    }


@pytest.mark.parametrize("flow_id", [5, None, {"a": 1}])
async def test_a_flow_id_that_is_not_a_string_is_422(flowhook: Any, flow_id: Any) -> None:
    answer = await flowhook.api.post(URL, json={"mapping": MAPPING, "request": {"body": {}}, "flowId": flow_id})
    assert answer.status_code == 422
    assert answer.json()["error"] == {"code": "invalid_field", "message": "flowId must be a string", "path": "$.flowId"}


@pytest.mark.parametrize(
    ("request_", "code", "path"),
    [
        ({"body": "x", "bogus": 1}, "unknown_field", "$.request.bogus"),
        ({"method": "GET", "body": "x"}, "invalid_field", "$.request.method"),
        ({"headers": [1], "body": "x"}, "invalid_field", "$.request.headers"),
        ({"query": 5, "body": "x"}, "invalid_field", "$.request.query"),
        ({"contentType": "text/plain; charset=us-ascii", "body": "café"}, "invalid_field", "$.request.body"),
        ("a string", "invalid_field", "$.request"),
    ],
)
async def test_a_bad_request_is_located_inside_request(flowhook: Any, request_: Any, code: str, path: str) -> None:
    """The paths used to be those of a pasted sample's body (`$.bogus`), not of the preview body."""
    answer = await flowhook.api.post(URL, json={"mapping": MAPPING, "request": request_})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["code"], error["path"]) == (code, path)


async def test_a_preview_stores_nothing(flowhook: Any) -> None:
    trigger = await flowhook.trigger()
    before = (await flowhook.api.get("/v1/default/requests", params={"limit": 200})).json()["data"]
    pasted = {"body": {"user": "u1"}, "headers": {"Authorization": "Bearer sk_live_1"}}
    answer = await flowhook.api.post(URL, json={"mapping": MAPPING, "request": pasted})
    assert answer.status_code == 200 and answer.json()["output"] == {"targetUserIds": ["u1"]}
    after = (await flowhook.api.get("/v1/default/requests", params={"limit": 200})).json()["data"]
    assert after == before
    samples = (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/samples")).json()["data"]
    assert samples == []
