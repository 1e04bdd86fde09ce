"""The webhook pipeline of SPEC §3: every status, every cause, in the order the SPEC gives.

The ladder test sends requests that fail several checks at once and fixes
the earliest failure one step at a time, so each answer proves which check
runs before which.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import stripe

pytestmark = pytest.mark.anyio

SECRET = "whsec_pipeline_0123456789abcdef"
MAX_BODY = 4096
LOG_BODY = 1024
SOURCE = """
function map(request) {
  const body = request.body;
  if (body.crash) {
    throw new TypeError("cannot map " + request.headers["x-private"]);
  }
  if (body.skip) return null;
  return { targetUserIds: body.users, flowInvocationId: body.key, variables: { plan: "gold" } };
}
"""


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"max_body_bytes": MAX_BODY, "log_body_bytes": LOG_BODY}


def stripe_config(secret: str) -> dict[str, Any]:
    """The SPEC's own example: the full (Atomic-style) config that verifies Stripe."""
    return {
        "secret": secret,
        "algorithm": "sha256",
        "digest": "hex",
        "signature": {"header": "Stripe-Signature", "parsePrefix": "v1="},
        "timestamp": {"header": "Stripe-Signature", "parsePrefix": "t="},
        "template": "[timestamp].[payload]",
        "toleranceSeconds": 300,
    }


def signed(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    when = int(time.time()) if timestamp is None else timestamp
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=when)
    return {"stripe_signature": str(header)}


ALLOWED = "flowInvocationId, metadata, notificationDetail, targetUserIds, variables"


def data(value: Any) -> bytes:
    return orjson.dumps(value)


async def test_the_checks_run_in_the_specs_order(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(
        flow,
        mode="disabled",
        allowedIps=["198.51.100.0/24"],
        verification=stripe_config(SECRET),
        mapping={"kind": "javascript", "source": SOURCE},
    )
    api = flowhook.api

    async def patch(**changes: Any) -> None:
        response = await api.patch(f"/v1/default/triggers/{trigger['id']}", json=changes)
        assert response.status_code == 200, response.text

    async def expect(status: int, cause: str, body: bytes, content_type: str = "application/json", **headers: str):
        response = await flowhook.post(trigger, body, content_type=content_type, **headers)
        assert response.status_code == status, response.text
        if status >= 400:
            assert response.json()["error"]["code"] == cause
            assert response.json()["error"]["requestId"].startswith("req_")
        return response

    everything_wrong = b"{not json" + b" " * MAX_BODY
    await expect(403, "trigger_disabled", everything_wrong, "application/pdf", stripe_signature="t=1,v1=00")
    await patch(mode="test")
    await expect(403, "ip_not_allowed", everything_wrong, "application/pdf", stripe_signature="t=1,v1=00")
    await patch(allowedIps=["198.51.100.0/24", "203.0.113.0/24"])
    await expect(413, "body_too_large", everything_wrong, "application/pdf", stripe_signature="t=1,v1=00")
    await expect(415, "unsupported_media_type", b"{not json", "application/pdf", stripe_signature="t=1,v1=00")
    await expect(401, "signature_invalid", b"{not json", stripe_signature="t=1,v1=00")
    await expect(401, "timestamp_out_of_tolerance", b"{not json", **signed(b"{not json", timestamp=1_600_000_000))
    await expect(400, "invalid_body", b"{not json", **signed(b"{not json"))
    crash = data({"crash": True})
    await expect(422, "mapping_error", crash, **signed(crash), x_private="hunter2")
    no_users = data({"users": []})
    await expect(422, "validation_error", no_users, **signed(no_users))
    first = data({"users": ["u1"], "key": "k1"})
    accepted = await expect(202, "accepted", first, **signed(first))
    assert accepted.json()["mode"] == "test"
    conflicting = data({"users": ["u2"], "key": "k1"})
    await expect(409, "idempotency_conflict", conflicting, **signed(conflicting))
    await patch(mode="live")  # keys are per mode: a live k1 would be new, not a conflict
    second = data({"users": ["u2"], "key": "k2"})
    await expect(409, "flow_not_published", second, **signed(second))
    assert (await api.post(f"/v1/default/action-flows/{flow['id']}/publish")).status_code == 200
    live = await expect(202, "accepted", second, **signed(second))
    assert live.json() == {"requestId": live.json()["requestId"], "flowInvocationId": "k2", "mode": "live"}

    causes = [entry["cause"] for entry in reversed(await flowhook.log(trigger))]
    assert causes == [
        "trigger_disabled",
        "ip_not_allowed",
        "body_too_large",
        "unsupported_media_type",
        "signature_invalid",
        "timestamp_out_of_tolerance",
        "invalid_body",
        "mapping_error",
        "validation_error",
        "accepted",
        "idempotency_conflict",
        "flow_not_published",
        "accepted",
    ]


async def test_error_bodies_never_echo_secrets_or_the_mapping_source(flowhook) -> None:
    trigger = await flowhook.trigger(
        verification=stripe_config(SECRET), mapping={"kind": "javascript", "source": SOURCE}
    )
    crash = data({"crash": True})
    response = await flowhook.post(trigger, crash, **signed(crash), x_private="hunter2")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "mapping_error"
    assert "TypeError" in error["message"] and "line 5" in error["message"]
    for leak in ("hunter2", "cannot map", "throw new", SECRET):
        assert leak not in response.text
    forged = await flowhook.post(trigger, crash, **signed(crash, secret="whsec_wrong_secret_000000000"))
    assert forged.status_code == 401 and SECRET not in forged.text
    # The admin sees the whole story in the log, with the secret-bearing headers redacted.
    entry = await flowhook.entry(error["requestId"])
    assert entry["mapping"]["error"]["message"] == "cannot map hunter2"
    assert entry["mapping"]["error"]["line"] == 5
    assert entry["headers"]["stripe-signature"] == "[redacted]"
    assert entry["headers"]["x-private"] == "hunter2"  # not secret-bearing by name: kept


async def test_unknown_hook_is_404_and_logged(flowhook) -> None:
    response = await flowhook.sender().post("/hooks/no-such-hook", content=b"{}")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "hook_not_found"
    entry = await flowhook.entry(error["requestId"])
    assert (entry["status"], entry["cause"], entry["hookId"], entry["triggerId"]) == (
        404,
        "hook_not_found",
        "no-such-hook",
        None,
    )


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_are_405_and_logged(flowhook, method: str) -> None:
    trigger = await flowhook.trigger()
    for hook in (trigger["hookId"], "no-such-hook"):
        response = await flowhook.sender().request(method, f"/hooks/{hook}")
        assert (response.status_code, response.headers["allow"]) == (405, "POST, PUT")
        error = response.json()["error"]
        assert error["code"] == "method_not_allowed"
        entry = await flowhook.entry(error["requestId"])
        assert (entry["method"], entry["cause"]) == (method, "method_not_allowed")
        assert entry["triggerId"] == (trigger["id"] if hook == trigger["hookId"] else None)


async def test_a_trailing_slash_reaches_the_same_hook(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    response = await flowhook.sender().post(
        f"/hooks/{trigger['hookId']}/",
        content=data({"targetUserIds": ["u1"]}),
        headers={"host": "evil.example", "content-type": "application/json"},
    )
    assert response.status_code == 202, response.text  # not a redirect to a URL built from the Host header
    assert (await flowhook.entry(response.json()["requestId"]))["triggerId"] == trigger["id"]
    for path in (f"/hooks/{trigger['hookId']}//", "/v1/default/action-flows/"):
        extra_slash = await flowhook.api.post(path, content=b"{}", headers={"host": "evil.example"})
        assert (extra_slash.status_code, extra_slash.headers.get("location")) == (404, None)


async def test_put_is_accepted_like_post(flowhook) -> None:
    trigger = await flowhook.trigger()
    response = await flowhook.post(trigger, data({"targetUserIds": ["u1"]}), method="PUT")
    assert response.status_code == 202, response.text
    assert (await flowhook.entry(response.json()["requestId"]))["method"] == "PUT"


async def test_a_skipping_mapping_answers_200_and_starts_nothing(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "javascript", "source": SOURCE})
    response = await flowhook.post(trigger, data({"skip": True}))
    assert response.status_code == 200
    assert response.json() == {"skipped": True, "requestId": response.json()["requestId"]}
    entry = await flowhook.entry(response.json()["requestId"])
    assert (entry["cause"], entry["invocationId"]) == ("skipped", None)


async def test_an_oversized_request_head_is_431_and_logged_shortened(flowhook) -> None:
    """A sender (anyone, for an unknown hook) cannot write megabytes of headers into the request log."""
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    body = data({"targetUserIds": ["u1"]})
    near = await flowhook.post(trigger, body, x_padding="a" * (30 * 1024))
    assert near.status_code == 202  # 32 KiB for the URL and all headers together, by default
    for hook in (trigger["hookId"], "no-such-hook"):
        response = await flowhook.sender().post(
            f"/hooks/{hook}?q={'q' * 1000}",
            content=body,
            headers={"content-type": "application/json", **{f"x-big-{n}": "b" * 20_000 for n in range(3)}},
        )
        assert response.status_code == 431
        assert response.headers["connection"] == "close"
        entry = await flowhook.entry(response.json()["error"]["requestId"])
        assert (entry["status"], entry["cause"], entry["triggerId"]) == (431, "headers_too_large", None)
        assert entry["headers"]["x-big-0"] == "b" * 256 + "…[19744 more characters]"
        assert len(entry["query"]) < 300
    many = {f"x-h-{n:03d}": "v" * 300 for n in range(120)}  # 36 KiB in headers no longer than the limit each
    response = await flowhook.sender().post(f"/hooks/{trigger['hookId']}", content=body, headers=many)
    entry = await flowhook.entry(response.json()["error"]["requestId"])
    assert (response.status_code, len(entry["headers"])) == (431, 51)
    assert entry["headers"]["…"].endswith(" more headers]")


async def test_body_limit_holds_for_declared_and_chunked_bodies(flowhook) -> None:
    trigger = await flowhook.trigger()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    declared = await flowhook.post(trigger, "é" * (MAX_BODY // 2 + 1))
    streamed = await flowhook.sender().post(
        f"/hooks/{trigger['hookId']}", content=chunks(), headers={"content-type": "text/plain"}
    )
    exact = await flowhook.post(trigger, b" " * MAX_BODY, content_type="text/plain")
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert declared.headers["connection"] == "close"
    assert exact.status_code == 422  # read whole: the limit is inclusive
    entry = await flowhook.entry(streamed.json()["error"]["requestId"])
    assert entry["cause"] == "body_too_large"
    assert entry["bodyTruncated"] is True
    assert len(entry["body"]) == LOG_BODY
    refused_unread = await flowhook.entry(declared.json()["error"]["requestId"])
    assert (refused_unread["body"], refused_unread["bodyBytes"]) == ("", MAX_BODY + 2)  # as announced


async def test_a_logged_body_cut_in_the_middle_of_a_character_leaves_it_out(flowhook) -> None:
    trigger = await flowhook.trigger()
    response = await flowhook.post(trigger, "a" + "é" * LOG_BODY, content_type="text/plain")  # 2 bytes each
    entry = await flowhook.entry(response.json()["error"]["requestId"])
    assert entry["body"] == "a" + "é" * ((LOG_BODY - 1) // 2)  # not a trailing replacement character
    assert (entry["bodyBytes"], entry["bodyTruncated"]) == (1 + 2 * LOG_BODY, True)


async def test_content_types_json_form_and_text_reach_the_mapping(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "jmespath", "fields": {"targetUserIds": "body.user"}})
    json_body = await flowhook.post(trigger, data({"user": "u-json"}), content_type="application/vnd.api+json")
    form = await flowhook.post(trigger, "user=u-form&x=1", content_type="application/x-www-form-urlencoded")
    text = await flowhook.post(trigger, "hello", content_type="text/plain; charset=utf-8")
    assert json_body.status_code == 202 and form.status_code == 202
    assert text.status_code == 422 and text.json()["error"]["code"] == "validation_error"
    outputs = [(await flowhook.entry(r.json()["requestId"]))["output"] for r in (json_body, form)]
    assert [output["targetUserIds"] for output in outputs] == [["u-json"], ["u-form"]]
    multipart = await flowhook.post(trigger, "--x--", content_type="multipart/form-data; boundary=x")
    assert multipart.status_code == 415


async def test_a_validation_error_answers_each_problem_with_its_path_and_message(flowhook) -> None:
    """The webhook 422 has the Action Flow API's `errors` list; the log keeps the same problems."""
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    response = await flowhook.post(trigger, data({"targetUserIds": [""], "extra": 1}))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "the mapped output is not a valid trigger request (2 problems)"
    problems = [
        {"path": "$", "message": "unknown property 'extra'; allowed: " + ALLOWED},
        {"path": "$.targetUserIds[0]", "message": "has 0 characters, fewer than the 1 required"},
    ]
    assert sorted(error["errors"], key=lambda problem: problem["path"]) == problems
    assert error["paths"] == [problem["path"] for problem in error["errors"]]
    entry = await flowhook.entry(error["requestId"])
    assert entry["mapping"]["validationErrors"] == error["errors"]
    assert entry["output"] == {"targetUserIds": [""], "extra": 1}
    assert entry["message"].startswith("2 problems: ")


async def test_a_list_of_too_many_users_is_refused_with_the_reason(flowhook) -> None:
    """10,001 ids: the message says so instead of quoting the ids, in the answer and in the log."""
    source = "function map(r) { return {targetUserIds: Array.from({length: 10001}, (_, i) => 'user-' + i)}; }"
    trigger = await flowhook.trigger(mapping={"kind": "javascript", "source": source})
    response = await flowhook.post(trigger, data({}))
    assert response.status_code == 422
    problem = {"path": "$.targetUserIds", "message": "has 10001 items, more than the 10000 allowed"}
    assert response.json()["error"]["errors"] == [problem]
    entry = await flowhook.entry(response.json()["error"]["requestId"])
    assert entry["message"] == "1 problem: $.targetUserIds: has 10001 items, more than the 10000 allowed"
    assert entry["mapping"]["validationErrors"] == [problem]


async def test_a_validation_answer_lists_100_problems_and_counts_them_all(flowhook) -> None:
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    response = await flowhook.post(trigger, data({"targetUserIds": [""] * 150}))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"] == (
        "the mapped output is not a valid trigger request (150 problems; the first 100 are listed)"
    )
    assert [problem["path"] for problem in error["errors"]] == [f"$.targetUserIds[{i}]" for i in range(100)]
    assert error["paths"] == [problem["path"] for problem in error["errors"]]
    entry = await flowhook.entry(error["requestId"])
    assert len(entry["mapping"]["validationErrors"]) == 150  # the admin sees every one
    assert entry["message"].startswith("150 problems; the first 100 are listed: $.targetUserIds[0]: ")


async def test_validation_answers_never_echo_the_output_the_source_or_a_header(flowhook) -> None:
    """The output holds what the request and the mapping's source held; messages name limits and types only."""
    source = """
const KEY = "sk_live_0123456789abcdef";
function map(request) {
  const header = request.headers["x-private"];
  return {targetUserIds: [header + "\\u0000"], flowInvocationId: KEY.repeat(10), variables: KEY, metadata: [header]};
}
"""
    trigger = await flowhook.trigger(mapping={"kind": "javascript", "source": source})
    response = await flowhook.post(trigger, data({}), x_private="hunter2")
    assert response.status_code == 422
    assert [(problem["path"], problem["message"]) for problem in response.json()["error"]["errors"]] == [
        ("$.targetUserIds[0]", "does not match the pattern ^[^\\u0000]*$"),
        ("$.flowInvocationId", "has 240 characters, more than the 128 allowed"),
        ("$.variables", "must be an object, not a string"),
        ("$.metadata", "must be an object, not an array"),
    ]
    for leak in ("hunter2", "sk_live", "0123456789abcdef", "KEY"):
        assert leak not in response.text


async def test_flow_variables_apply_defaults_and_required(flowhook) -> None:
    flow = await flowhook.flow(
        variables=[
            {"name": "plan", "type": "string", "default": "free"},
            {"name": "amount", "type": "number", "required": True},
        ]
    )
    trigger = await flowhook.trigger(flow, mapping={"kind": "passthrough"})
    missing = await flowhook.post(trigger, data({"targetUserIds": ["u1"]}))
    assert missing.status_code == 422
    problem = {"path": "$.variables.amount", "message": "required variable 'amount' is missing"}
    assert missing.json()["error"]["errors"] == [problem]
    wrong = await flowhook.post(trigger, data({"targetUserIds": ["u1"], "variables": {"amount": "5"}}))
    problem = {"path": "$.variables.amount", "message": "variable 'amount' must be a number"}
    assert wrong.status_code == 422 and wrong.json()["error"]["errors"] == [problem]
    given = await flowhook.post(trigger, data({"targetUserIds": ["u1"], "variables": {"amount": 5}}))
    assert given.status_code == 202
    entry = await flowhook.entry(given.json()["requestId"])
    assert entry["output"]["variables"] == {"amount": 5, "plan": "free"}
