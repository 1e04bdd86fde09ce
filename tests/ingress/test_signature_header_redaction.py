"""A trigger's own signature and timestamp headers are secrets only its verification config names
(`X-Custom-Check` matches no secret-bearing pattern): a pasted sample, and an inline preview request made for
the trigger, redact them as a captured sample and the request log do."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

SECRET = "abcdefabcdefabcdef"
VERIFICATION = {
    "secret": SECRET,
    "signature": {"header": "X-Custom-Check"},
    "timestamp": {"header": "X-Custom-Sent"},
    "template": "[timestamp].[payload]",
    "toleranceSeconds": 300,
}
ECHO = {"kind": "javascript", "source": "function map(r) { return {targetUserIds: ['u'], metadata: r.headers}; }"}
HEADERS = {"X-Custom-Check": "deadbeef", "X-Custom-Sent": "1700000000", "X-Other": "kept"}
REDACTED = {"x-custom-check": "[redacted]", "x-custom-sent": "[redacted]", "x-other": "kept"}
HEADERS_LOWER = {name.lower(): value for name, value in HEADERS.items()}


async def signed_trigger(flowhook: Any) -> dict[str, Any]:
    trigger: dict[str, Any] = await flowhook.trigger(mapping=ECHO, verification=VERIFICATION)
    return trigger


def own_headers(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.startswith("x-")}


async def test_a_pasted_sample_redacts_the_triggers_signature_headers_as_a_captured_one(flowhook) -> None:
    trigger = await signed_trigger(flowhook)
    pasted = await flowhook.api.post(
        f"/v1/default/triggers/{trigger['id']}/samples", json={"body": {"u": "a"}, "headers": HEADERS}
    )
    assert pasted.status_code == 201, pasted.text
    assert own_headers(pasted.json()["headers"]) == REDACTED

    await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    body, sent = b'{"u":"a"}', str(int(time.time()))
    signature = hmac.new(SECRET.encode(), f"{sent}.".encode() + body, hashlib.sha256).hexdigest()
    captured = await flowhook.post(trigger, body, x_custom_check=signature, x_custom_sent=sent, x_other="kept")
    assert captured.json()["captured"] is True, captured.text
    samples = (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/samples")).json()["data"]
    assert own_headers(samples[0]["headers"]) == REDACTED


async def test_an_inline_preview_for_the_trigger_redacts_its_signature_headers(flowhook) -> None:
    trigger = await signed_trigger(flowhook)
    request = {"body": {"u": "a"}, "headers": HEADERS}
    answer = await flowhook.api.post(
        "/v1/default/mappings/preview", json={"mapping": ECHO, "request": request, "triggerId": trigger["id"]}
    )
    assert answer.status_code == 200, answer.text
    assert own_headers(answer.json()["output"]["metadata"]) == REDACTED


async def test_a_trigger_without_verification_redacts_only_secret_bearing_names(flowhook) -> None:
    trigger = await flowhook.trigger(mapping=ECHO)
    pasted = await flowhook.api.post(
        f"/v1/default/triggers/{trigger['id']}/samples",
        json={"body": {"u": "a"}, "headers": {**HEADERS, "X-Signature": "s"}},
    )
    assert own_headers(pasted.json()["headers"]) == {**HEADERS_LOWER, "x-signature": "[redacted]"}


async def test_a_pasted_samples_path_has_its_secret_query_redacted(flowhook) -> None:
    """A pasted `/x?token=…` kept the token in clear, while its `query` field was redacted."""
    trigger = await flowhook.trigger(mapping=ECHO)
    pasted = await flowhook.api.post(
        f"/v1/default/triggers/{trigger['id']}/samples",
        json={"body": {"u": "a"}, "path": "/x?token=LEAKME&page=2", "query": {"sig": "LEAKME2"}},
    )
    assert pasted.status_code == 201, pasted.text
    assert pasted.json()["path"] == "/x?token=[redacted]&page=2"
    assert "LEAKME" not in pasted.text
