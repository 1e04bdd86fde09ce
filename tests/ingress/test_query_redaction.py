"""Secrets in a webhook's query string reach the mapping but never the request log or a captured sample."""

from __future__ import annotations

import orjson
import pytest

from ingress.redaction import REDACTED

pytestmark = pytest.mark.anyio


async def test_a_query_token_is_redacted_in_the_log_but_seen_by_the_mapping(flowhook) -> None:
    mapping = {
        "kind": "jmespath",
        "fields": {"targetUserIds": "body.user", "variables.tokenSeen": "query.token == 'abc123'"},
    }
    trigger = await flowhook.trigger(mapping=mapping)
    response = await flowhook.sender().post(
        f"/hooks/{trigger['hookId']}?token=abc123&x=1",
        content=orjson.dumps({"user": "u1"}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 202, response.text
    entry = await flowhook.entry(response.json()["requestId"])
    assert entry["output"]["variables"] == {"tokenSeen": True}  # the mapping read the real query
    assert entry["query"] == f"token={REDACTED}&x=1"
    assert b"abc123" not in orjson.dumps(entry)


async def test_a_captured_sample_keeps_no_query_token(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    armed = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    assert armed.status_code == 200, armed.text
    response = await flowhook.sender().post(
        f"/hooks/{trigger['hookId']}?api_key=abc123&x=1", content=b"{}", headers={"content-type": "application/json"}
    )
    assert response.json()["captured"] is True
    samples = await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/samples")
    (sample,) = samples.json()["data"]
    assert sample["query"] == f"api_key={REDACTED}&x=1"
    assert b"abc123" not in samples.content
