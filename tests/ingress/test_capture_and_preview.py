"""Capture a sample, paste one, preview mappings against them (JavaScript through the pool)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac

import orjson
import pytest

pytestmark = pytest.mark.anyio

EVENT = {"type": "invoice.paid", "data": {"object": {"customer": "cus_1", "metadata": {"user": "u-7"}}}}
JS = {
    "kind": "javascript",
    "source": """function map(request) {
  console.log("mapping", request.body.type);
  const user = request.body.data.object.metadata.user;
  return { targetUserIds: [user], variables: { event: request.body.type, q: request.query.source } };
}""",
}


async def test_an_armed_trigger_captures_the_next_request_and_starts_nothing(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow, verification={"preset": "github", "secret": "capture-secret"})
    armed = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    assert (armed.json()["triggerId"], armed.json()["armed"]) == (trigger["id"], True)
    shown = await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")
    assert shown.json()["captureArmed"] is True

    # An unsigned request is refused, not captured: samples come from the real sender only.
    assert (await flowhook.post(trigger, orjson.dumps(EVENT))).status_code == 401
    body = orjson.dumps(EVENT)
    signature = "sha256=" + hmac.new(b"capture-secret", body, hashlib.sha256).hexdigest()
    captured = await flowhook.sender().post(
        f"/hooks/{trigger['hookId']}?source=stripe",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": signature, "authorization": "Bearer x"},
    )
    assert captured.status_code == 202
    assert captured.json()["captured"] is True
    then = await flowhook.sender().post(
        f"/hooks/{trigger['hookId']}",
        content=body,
        headers={"content-type": "application/json", "x-hub-signature-256": signature},
    )
    assert then.status_code == 422 and then.json()["error"]["code"] == "validation_error"  # capture is one-shot

    samples = (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/samples")).json()["data"]
    assert len(samples) == 1
    sample = samples[0]
    assert (sample["source"], sample["method"], sample["query"]) == ("captured", "POST", "source=stripe")
    assert orjson.loads(sample["body"]) == EVENT
    assert sample["headers"]["authorization"] == "[redacted]"
    assert sample["headers"]["x-hub-signature-256"] == "[redacted]"
    entry = await flowhook.entry(captured.json()["requestId"])
    assert (entry["status"], entry["cause"], entry["invocationId"]) == (202, "captured", None)
    assert (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")).json()["captureArmed"] is False


async def test_concurrent_requests_to_an_armed_trigger_capture_exactly_one(flowhook) -> None:
    trigger = await flowhook.trigger()
    await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    body = orjson.dumps({"targetUserIds": ["u1"]})
    responses = await asyncio.gather(*(flowhook.post(trigger, body) for _ in range(10)))
    bodies = [response.json() for response in responses]
    assert sum(1 for body in bodies if body.get("captured")) == 1
    assert sum(1 for body in bodies if "flowInvocationId" in body) == 9


async def test_disarming_capture(flowhook) -> None:
    trigger = await flowhook.trigger()
    await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    disarmed = await flowhook.api.delete(f"/v1/default/triggers/{trigger['id']}/capture")
    assert disarmed.json()["armed"] is False
    assert "captured" not in (await flowhook.post(trigger, orjson.dumps({"targetUserIds": ["u1"]}))).json()


async def test_preview_a_javascript_mapping_against_a_pasted_sample(flowhook) -> None:
    trigger = await flowhook.trigger()
    pasted = await flowhook.api.post(
        f"/v1/default/triggers/{trigger['id']}/samples",
        json={"body": EVENT, "query": {"source": "paste"}, "headers": {"X-Api-Key": "k-123", "X-Other": "v"}},
    )
    assert pasted.status_code == 201
    sample = pasted.json()
    assert (sample["source"], sample["contentType"], sample["method"]) == ("pasted", "application/json", "POST")
    assert sample["headers"] == {"x-api-key": "[redacted]", "x-other": "v", "content-type": "application/json"}

    preview = await flowhook.api.post("/v1/default/mappings/preview", json={"mapping": JS, "sampleId": sample["id"]})
    assert preview.status_code == 200, preview.text
    result = preview.json()
    assert result["ok"] is True
    assert result["output"] == {"targetUserIds": ["u-7"], "variables": {"event": "invoice.paid", "q": "paste"}}
    assert result["logs"] == [{"level": "log", "message": "mapping invoice.paid"}]
    assert result["durationMs"] >= 0


async def test_preview_reports_errors_and_validation_with_the_flow_variables(flowhook) -> None:
    flow = await flowhook.flow(variables=[{"name": "amount", "type": "number", "required": True}])
    request = {"body": EVENT, "contentType": "application/json"}
    invalid = await flowhook.api.post(
        "/v1/default/mappings/preview", json={"mapping": JS, "request": request, "flowId": flow["id"]}
    )
    assert invalid.json()["ok"] is False
    assert invalid.json()["validationErrors"] == [
        {"path": "$.variables.amount", "message": "required variable 'amount' is missing"}
    ]
    throwing = {"kind": "javascript", "source": "function map(r) {\n  return r.body.nope.deeper;\n}"}
    failed = await flowhook.api.post("/v1/default/mappings/preview", json={"mapping": throwing, "request": request})
    assert failed.json()["error"]["type"] == "TypeError" and failed.json()["error"]["line"] == 2
    jmes = {"kind": "jmespath", "fields": {"targetUserIds": "body.data.object.customer"}}
    ok = await flowhook.api.post("/v1/default/mappings/preview", json={"mapping": jmes, "request": request})
    assert ok.json()["output"] == {"targetUserIds": ["cus_1"]}
    spec_request = {  # a SPEC §2 request object, as `flowhook map` takes it
        "method": "POST",
        "headers": {},
        "query": {},
        "body": {"a": "1"},
        "rawBody": "a=1",
        "contentType": "application/x-www-form-urlencoded",
        "receivedAt": "2024-01-01T00:00:00Z",
    }
    form = await flowhook.api.post(
        "/v1/default/mappings/preview",
        json={"mapping": {"kind": "jmespath", "fields": {"targetUserIds": "body.a"}}, "request": spec_request},
    )
    assert form.json()["output"] == {"targetUserIds": ["1"]}


async def test_the_preview_shows_a_lone_user_id_as_the_list_the_flow_gets(flowhook) -> None:
    """JavaScript runs in the preview's sandbox here; the wrapping is the judge's, the same as live."""
    mapping = {"kind": "javascript", "source": "function map(r) { return {targetUserIds: r.body.user}; }"}
    request = {"body": {"user": "u-1"}, "contentType": "application/json"}
    preview = await flowhook.api.post("/v1/default/mappings/preview", json={"mapping": mapping, "request": request})
    assert (preview.json()["ok"], preview.json()["output"]) == (True, {"targetUserIds": ["u-1"]})


async def test_preview_input_errors(flowhook) -> None:
    url = "/v1/default/mappings/preview"
    bad_spec = await flowhook.api.post(url, json={"mapping": {"kind": "javascript", "source": "{"}, "request": {}})
    assert bad_spec.status_code == 422 and bad_spec.json()["error"]["code"] == "invalid_mapping"
    both = await flowhook.api.post(url, json={"mapping": JS, "request": {}, "sampleId": "smp_x"})
    assert both.status_code == 422
    missing = await flowhook.api.post(url, json={"mapping": JS, "sampleId": "smp_missing"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "sample_not_found"
    unparseable = await flowhook.api.post(
        url, json={"mapping": JS, "request": {"body": "{oops", "contentType": "application/json"}}
    )
    assert unparseable.status_code == 400 and unparseable.json()["error"]["code"] == "invalid_body"


async def test_a_latin1_form_is_read_logged_replayed_and_previewed_as_its_charset_says(flowhook) -> None:
    mapping = {"kind": "jmespath", "fields": {"targetUserIds": "body.user", "variables.name": "body.name"}}
    trigger = await flowhook.trigger(mapping=mapping)
    form = "application/x-www-form-urlencoded; charset=iso-8859-1"
    raw = "user=u-1&name=René".encode("iso-8859-1")
    sent = await flowhook.post(trigger, raw, content_type=form)
    assert sent.status_code == 202, sent.text
    entry = await flowhook.entry(sent.json()["requestId"])
    assert (entry["body"], entry["output"]["variables"]) == ("user=u-1&name=René", {"name": "René"})

    replayed = await flowhook.api.post(f"/v1/default/requests/{entry['id']}/replay")
    assert (replayed.status_code, replayed.json()["status"]) == (200, 202), replayed.text
    again = await flowhook.entry(replayed.json()["requestId"])
    assert again["output"]["variables"] == {"name": "René"}

    await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    assert (await flowhook.post(trigger, raw, content_type=form)).json()["captured"] is True
    sample = (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/samples")).json()["data"][0]
    assert sample["body"] == "user=u-1&name=René"
    preview = await flowhook.api.post(
        "/v1/default/mappings/preview", json={"mapping": mapping, "sampleId": sample["id"]}
    )
    assert preview.json()["output"]["variables"] == {"name": "René"}


async def test_an_unknown_charset_is_415_before_the_signature_is_checked(flowhook) -> None:
    trigger = await flowhook.trigger(verification={"preset": "github", "secret": "charset-secret"})
    refused = await flowhook.post(trigger, b"hello", content_type="text/plain; charset=klingon")
    assert refused.status_code == 415
    assert "klingon" not in refused.json()["error"]["message"]  # answers never echo a header value ...
    entry = await flowhook.entry(refused.json()["error"]["requestId"])
    assert (entry["cause"], entry["message"]) == (  # ... the log says what it was
        "unsupported_media_type",
        "charset 'klingon' is not supported; send UTF-8 or another standard charset",
    )


async def test_a_utf16_body_is_read_big_endian_without_its_mark_and_refused_and_logged_when_it_is_not_utf16(
    flowhook,
) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    content_type = "application/json; charset=utf-16"
    sent = await flowhook.post(trigger, '{"targetUserIds": ["u1"]}'.encode("utf-16-be"), content_type=content_type)
    assert sent.status_code == 202, sent.text
    refused = await flowhook.post(trigger, b'{"targetUserIds": ["u1"]}', content_type=content_type)  # ASCII
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_body")  # was a 500, unlogged
    entry = await flowhook.entry(refused.json()["error"]["requestId"])
    assert (entry["cause"], entry["message"]) == ("invalid_body", "body is not valid utf-16 (byte 24)")
    url = f"/v1/default/triggers/{trigger['id']}/samples"
    pasted = await flowhook.api.post(url, json={"body": '{"a": 1}', "contentType": content_type})
    assert pasted.status_code == 201, pasted.text


async def test_a_compressed_body_is_415(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    body = gzip.compress(b'{"targetUserIds": ["u1"]}')
    refused = await flowhook.post(trigger, body, content_encoding="gzip")
    assert refused.status_code == 415
    entry = await flowhook.entry(refused.json()["error"]["requestId"])
    assert entry["message"] == "content encoding 'gzip' is not supported; send the body uncompressed"
    plain = await flowhook.post(trigger, b'{"targetUserIds": ["u1"]}', content_encoding="identity")
    assert plain.status_code == 202


async def test_a_pasted_sample_is_kept_like_a_captured_one_and_refused_where_a_live_request_would_be(flowhook) -> None:
    trigger = await flowhook.trigger()
    url = f"/v1/default/triggers/{trigger['id']}/samples"
    pasted = await flowhook.api.post(url, json={"body": "x", "query": "token=PASTED&page=2"})
    assert (pasted.status_code, pasted.json()["query"]) == (201, "token=[redacted]&page=2")
    unreadable = await flowhook.api.post(url, json={"body": "x", "contentType": "text/plain; charset=klingon"})
    assert (unreadable.status_code, unreadable.json()["error"]["code"]) == (415, "unsupported_media_type")
    unencodable = await flowhook.api.post(url, json={"body": "café", "contentType": "text/plain; charset=us-ascii"})
    assert (unencodable.status_code, unencodable.json()["error"]["path"]) == (422, "$.body")
    compressed = await flowhook.api.post(url, json={"body": "{}", "headers": {"Content-Encoding": "gzip"}})
    assert (compressed.status_code, compressed.json()["error"]["code"]) == (415, "unsupported_media_type")


async def test_preview_takes_a_spec_request_object_as_it_is(flowhook) -> None:
    source = "function map(r) { return {targetUserIds: [r.body.user], variables: {at: r.receivedAt}}; }"
    given = {
        "method": "POST",
        "headers": {},
        "query": {},
        "body": {"user": "u-given"},
        "rawBody": '{"user": "u-raw"}',
        "contentType": "application/json",
        "receivedAt": "2020-01-01T00:00:00.000Z",
    }
    preview = await flowhook.api.post(
        "/v1/default/mappings/preview", json={"mapping": {"kind": "javascript", "source": source}, "request": given}
    )
    output = preview.json()["output"]
    assert output == {"targetUserIds": ["u-given"], "variables": {"at": "2020-01-01T00:00:00.000Z"}}


async def test_a_body_its_charset_cannot_decode_is_neither_replayed_nor_captured(flowhook) -> None:
    """The log keeps it with replacement characters, so it no longer holds the body as sent."""
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    refused = await flowhook.post(trigger, b"caf\xe9", content_type="text/plain")
    assert refused.status_code == 400
    entry = await flowhook.entry(refused.json()["error"]["requestId"])
    assert (entry["body"], entry["bodyTruncated"]) == ("caf\ufffd", True)
    replay = await flowhook.api.post(f"/v1/default/requests/{entry['id']}/replay")
    assert (replay.status_code, replay.json()["error"]["code"]) == (409, "replay_not_allowed")
    await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    assert (await flowhook.post(trigger, b"caf\xe9", content_type="text/plain")).status_code == 400  # not captured
    shown = await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")
    assert shown.json()["captureArmed"] is True
