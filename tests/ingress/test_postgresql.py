"""The service end to end on PostgreSQL: webhooks, idempotency, the request log, the executor, API starts.

Runs when FLOWHOOK_TEST_POSTGRES names a server (`.ci/postgres` starts one in
CI) and is skipped otherwise; the same tests' SQLite twins are the rest of
this directory. The store-level guarantees (claims with SKIP LOCKED, crashes
before COMMIT, rival executors) run on both databases in tests/store and
tests/flows/test_exactly_once.py.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import URL

pytestmark = pytest.mark.anyio

SECRET = "whsec_postgres_test"
SOURCE = "function map(request) { return {targetUserIds: [request.body.user], flowInvocationId: request.body.id}; }"


@pytest.fixture(scope="module")
def settings_overrides(postgres_database: URL) -> dict[str, Any]:
    return {"database": postgres_database.render_as_string(hide_password=False), "durability": "os"}


def signed(body: dict[str, Any]) -> tuple[bytes, str]:
    raw, timestamp = orjson.dumps(body), int(time.time())
    digest = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return raw, f"t={timestamp},v1={digest}"


async def test_the_store_is_postgresql(flowhook) -> None:
    assert flowhook.services.store.engines.write.dialect.name == "postgresql"


async def test_signed_webhooks_are_accepted_once_per_key_and_mode(flowhook) -> None:
    flow = await flowhook.flow(publish=True, variables=[], steps=[])
    trigger = await flowhook.trigger(
        flow, type="webhook", mapping={"kind": "javascript", "source": SOURCE},
        verification={"preset": "stripe", "secret": SECRET},
    )  # fmt: skip
    raw, signature = signed({"user": "u1", "id": "evt_pg_1"})
    first = await flowhook.post(trigger, raw, stripe_signature=signature)
    assert first.status_code == 202, first.text
    assert first.json()["mode"] == "test"
    again = await flowhook.post(trigger, raw, stripe_signature=signature)
    assert (again.status_code, again.headers.get("idempotent-replayed")) == (202, "true")
    assert again.json()["requestId"] == first.json()["requestId"]
    changed, changed_signature = signed({"user": "u2", "id": "evt_pg_1"})
    conflict = await flowhook.post(trigger, changed, stripe_signature=changed_signature)
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "idempotency_conflict")
    tampered = await flowhook.post(trigger, raw.replace(b"u1", b"u9"), stripe_signature=signature)
    assert tampered.status_code == 401
    live = await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mode": "live"})
    assert live.status_code == 200, live.text
    in_live = await flowhook.post(trigger, raw, stripe_signature=signature)
    assert (in_live.status_code, in_live.json()["mode"]) == (202, "live")  # keys are per mode
    causes = [entry["cause"] for entry in await flowhook.log(trigger)]
    assert causes == ["accepted", "signature_invalid", "idempotency_conflict", "duplicate", "accepted"]
    page = await flowhook.log(trigger, limit=2)
    assert len(page) == 2
    assert len(await flowhook.log(trigger, since="2000-01-01T00:00:00Z", until="2999-01-01T00:00:00Z")) == 5
    assert await flowhook.log(trigger, since="2999-01-01T00:00:00Z") == []


async def test_the_executor_sends_cards_to_test_users(flowhook) -> None:
    template = await flowhook.api.post("/v1/default/card-templates", json={"name": "t", "definition": {"title": "Hi"}})
    assert template.status_code == 201, template.text
    steps = [{"type": "send-card", "id": "hello", "cardTemplateId": template.json()["id"]}]
    flow = await flowhook.flow(variables=[], steps=steps)
    added = await flowhook.api.post("/v1/default/test-users", json={"userId": "pg-tester"})
    assert added.status_code == 201, added.text
    client = await flowhook.api_client()
    body = {"flows": [{"target": {"usersById": ["pg-tester", "stranger"]}, "flowInvocationId": "pg-api-1"}]}
    started = await client.post(f"/v1/default/action-flow/{flow['id']}/test", json=body)
    assert started.status_code == 202, started.text
    assert started.json()["flows"][0]["ignoredUserIds"] == ["stranger"]
    await flowhook.expanded(flow, "pg-api-1")
    cards = await flowhook.api.get("/v1/default/users/pg-tester/cards")
    assert [card["eventSource"] for card in cards.json()["data"]] == ["test"]


async def test_environments_are_created_once(flowhook) -> None:
    created = await flowhook.api.post("/v1/environments", json={"id": "pg-staging"})
    assert created.status_code == 201, created.text
    again = await flowhook.api.post("/v1/environments", json={"id": "pg-staging"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "environment_exists")


async def test_nul_characters_from_a_sender_are_refused_or_stored_never_a_503(flowhook) -> None:
    """PostgreSQL text cannot hold NUL (SQLite can): a mapped id with one is a 422, a body or path with one
    is logged all the same, so the answers are SQLite's."""
    flow = await flowhook.flow(publish=True, variables=[], steps=[])
    trigger = await flowhook.trigger(flow, type="webhook", mapping={"kind": "javascript", "source": SOURCE})
    for body, path in (({"user": "u\u00001", "id": "evt_nul_1"}, "$.targetUserIds[0]"),
                       ({"user": "u1", "id": "evt\u0000nul"}, "$.flowInvocationId")):  # fmt: skip
        refused = await flowhook.post(trigger, orjson.dumps(body))
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "validation_error"), refused.text
        assert path in refused.text
    text = await flowhook.post(trigger, b"a\x00b", content_type="text/plain")
    assert text.status_code == 422, text.text  # the mapping reads body.user of a string: no users
    entries = await flowhook.log(trigger)
    assert [entry["status"] for entry in entries] == [422, 422, 422]
    kept = await flowhook.entry(text.json()["error"]["requestId"])
    assert (kept["body"], kept["bodyTruncated"]) == ("a\ufffdb", True)  # not as sent: not replayable
    throwing = {"kind": "javascript", "source": "function map(request) { throw new Error('a\\u0000b'); }"}
    thrower = await flowhook.trigger(flow, type="webhook", mapping=throwing)
    thrown = await flowhook.post(thrower, b"{}")
    assert (thrown.status_code, thrown.json()["error"]["code"]) == (422, "mapping_error"), thrown.text
    assert [entry["cause"] for entry in await flowhook.log(thrower)] == ["mapping_error"]
    unknown = await flowhook.sender().post("/hooks/no%00such", json={})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "hook_not_found"), unknown.text


async def test_capture_leaves_a_body_with_nul_to_the_pipeline_and_stays_armed(flowhook) -> None:
    flow = await flowhook.flow(publish=True, variables=[], steps=[])
    trigger = await flowhook.trigger(flow, type="webhook", mapping={"kind": "javascript", "source": SOURCE})
    armed = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    assert armed.status_code == 200, armed.text
    passed_on = await flowhook.post(trigger, b"a\x00b", content_type="text/plain")
    assert passed_on.status_code == 422, passed_on.text
    captured = await flowhook.post(trigger, b"ab", content_type="text/plain")
    assert (captured.status_code, captured.json().get("captured")) == (202, True), captured.text


async def test_a_replay_retried_under_one_idempotency_key_starts_the_flow_once(flowhook) -> None:
    flow = await flowhook.flow(publish=True, variables=[], steps=[])
    trigger = await flowhook.trigger(
        flow, type="webhook", mapping={"kind": "jmespath", "fields": {"targetUserIds": "body.user"}}
    )
    sent = (await flowhook.post(trigger, orjson.dumps({"user": "u1"}))).json()
    url, key = f"/v1/default/requests/{sent['requestId']}/replay", {"Idempotency-Key": "pg-retry"}
    first, again = [(await flowhook.api.post(url, headers=key)).json() for _ in range(2)]
    assert (first["cause"], again["cause"], again["response"]) == ("accepted", "duplicate", first["response"])
    other = (await flowhook.api.post(url, headers={"Idempotency-Key": "pg-other"})).json()
    assert other["cause"] == "accepted"
    assert other["response"]["flowInvocationId"] != first["response"]["flowInvocationId"]
