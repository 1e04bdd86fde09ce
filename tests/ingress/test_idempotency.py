"""flowInvocationId: one invocation per key, flow and mode, sequentially and under concurrent duplicates."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio


def payload(key: str | None, *users: str, **variables: Any) -> bytes:
    body: dict[str, Any] = {"targetUserIds": list(users) or ["u1"], "variables": variables}
    if key is not None:
        body["flowInvocationId"] = key
    return orjson.dumps(body)


def invocations(flowhook, flow_id: str) -> list[tuple[str, str, int | None]]:
    """(flowInvocationId, mode, flow version) of every stored invocation, read from the database file."""
    with sqlite3.connect(flowhook.data_dir / "flowhook.db") as db:
        rows = db.execute(
            "SELECT flow_invocation_id, mode, flow_version FROM invocations WHERE flow_id = ? ORDER BY seq", (flow_id,)
        )
        return list(rows)


async def test_a_repeat_gets_the_original_answer_and_creates_nothing(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    first = await flowhook.post(trigger, payload("order-1", plan="gold"))
    again = await flowhook.post(trigger, payload("order-1", plan="gold"))
    same_keys_reordered = {"variables": {"plan": "gold"}, "flowInvocationId": "order-1", "targetUserIds": ["u1"]}
    reordered = await flowhook.post(trigger, orjson.dumps(same_keys_reordered))
    assert first.status_code == again.status_code == reordered.status_code == 202
    assert again.json() == reordered.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert invocations(flowhook, flow["id"]) == [("order-1", "test", None)]
    entries = await flowhook.log(trigger)
    assert [entry["cause"] for entry in entries] == ["duplicate", "duplicate", "accepted"]
    assert len({entry["invocationId"] for entry in entries}) == 1


async def test_a_different_payload_under_the_same_key_is_409(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    assert (await flowhook.post(trigger, payload("order-2", plan="gold"))).status_code == 202
    conflict = await flowhook.post(trigger, payload("order-2", plan="silver"))
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert len(invocations(flowhook, flow["id"])) == 1


async def test_keys_are_per_flow(flowhook) -> None:
    one, two = await flowhook.flow(), await flowhook.flow()
    for flow in (one, two):
        trigger = await flowhook.trigger(flow)
        assert (await flowhook.post(trigger, payload("shared-key", "u9"))).status_code == 202
        assert invocations(flowhook, flow["id"]) == [("shared-key", "test", None)]


async def test_keys_are_per_mode_a_test_delivery_never_uses_up_the_live_one(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    trigger = await flowhook.trigger(flow)
    tested = await flowhook.post(trigger, payload("evt_1", plan="sample"))
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mode": "live"})
    live = await flowhook.post(trigger, payload("evt_1", plan="real"))  # another payload: not a conflict either
    live_again = await flowhook.post(trigger, payload("evt_1", plan="real"))
    live_changed = await flowhook.post(trigger, payload("evt_1", plan="other"))
    assert (tested.status_code, tested.json()["mode"]) == (202, "test")
    assert (live.status_code, live.json()["mode"]) == (202, "live") and "idempotent-replayed" not in live.headers
    assert live_again.json() == live.json() and live_again.headers["idempotent-replayed"] == "true"
    assert live_changed.status_code == 409 and live_changed.json()["error"]["code"] == "idempotency_conflict"
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mode": "test"})
    test_again = await flowhook.post(trigger, payload("evt_1", plan="sample"))
    assert test_again.json() == tested.json() and test_again.headers["idempotent-replayed"] == "true"
    assert invocations(flowhook, flow["id"]) == [("evt_1", "test", None), ("evt_1", "live", 1)]


async def test_no_key_means_a_new_invocation_each_time(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    answers = [(await flowhook.post(trigger, payload(None))).json() for _ in range(3)]
    assert len({answer["flowInvocationId"] for answer in answers}) == 3
    assert len(invocations(flowhook, flow["id"])) == 3


async def test_concurrent_identical_requests_store_one_invocation(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    responses = await asyncio.gather(*(flowhook.post(trigger, payload("burst", plan="gold")) for _ in range(50)))
    assert {response.status_code for response in responses} == {202}
    assert len({response.content for response in responses}) == 1  # everyone got the original answer
    assert invocations(flowhook, flow["id"]) == [("burst", "test", None)]
    causes = [entry["cause"] for entry in await flowhook.log(trigger, limit=100)]
    assert (causes.count("accepted"), causes.count("duplicate")) == (1, 49)


async def test_concurrent_conflicting_requests_let_exactly_one_through(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    responses = await asyncio.gather(*(flowhook.post(trigger, payload("race", plan=f"p{i}")) for i in range(30)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [202] + [409] * 29
    assert len(invocations(flowhook, flow["id"])) == 1


async def test_test_mode_runs_the_draft_and_live_the_published_version(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    test = await flowhook.post(trigger, payload("t-1"))
    assert test.json()["mode"] == "test"
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mode": "live"})
    unpublished = await flowhook.post(trigger, payload("l-1"))
    assert unpublished.status_code == 409 and unpublished.json()["error"]["code"] == "flow_not_published"
    await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/publish")
    await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/publish")
    live = await flowhook.post(trigger, payload("l-1"))
    assert live.status_code == 202 and live.json()["mode"] == "live"
    assert invocations(flowhook, flow["id"]) == [("t-1", "test", None), ("l-1", "live", 2)]


async def test_live_variables_come_from_the_published_version(flowhook) -> None:
    flow = await flowhook.flow(variables=[{"name": "plan", "type": "string", "default": "v1"}], publish=True)
    trigger = await flowhook.trigger(flow, mode="live")
    draft = {"name": "Welcome", "variables": [{"name": "plan", "type": "string", "default": "draft"}]}
    assert (await flowhook.api.put(f"/v1/default/action-flows/{flow['id']}", json=draft)).status_code == 200
    live = await flowhook.post(trigger, payload(None))
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mode": "test"})
    test = await flowhook.post(trigger, payload(None))
    plans = [(await flowhook.entry(r.json()["requestId"]))["output"]["variables"]["plan"] for r in (live, test)]
    assert plans == ["v1", "draft"]


async def test_a_retry_after_a_new_default_is_published_is_still_a_repeat(flowhook) -> None:
    """The request is compared as given, before the flow's defaults fill it in."""
    plan = [{"name": "plan", "type": "string", "default": "basic"}]
    flow = await flowhook.flow(variables=plan, publish=True)
    trigger = await flowhook.trigger(flow, mode="live", mapping={"kind": "passthrough"})
    body = orjson.dumps({"targetUserIds": ["u1"], "flowInvocationId": "evt-retry"})
    first = await flowhook.post(trigger, body)
    changed = [{"name": "plan", "type": "string", "default": "premium"}]
    draft = {"name": "Welcome", "variables": changed}
    assert (await flowhook.api.put(f"/v1/default/action-flows/{flow['id']}", json=draft)).status_code == 200
    assert (await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/publish")).status_code == 200
    retry = await flowhook.post(trigger, body)
    assert (first.status_code, retry.status_code, retry.json()) == (202, 202, first.json())
    assert retry.headers["idempotent-replayed"] == "true"
    empty = orjson.dumps({"targetUserIds": ["u1"], "flowInvocationId": "evt-retry", "variables": {}})
    assert (await flowhook.post(trigger, empty)).status_code == 202  # an empty object says what leaving it out says
    # Sending "premium" itself is another request: it was not in the first one.
    explicit = orjson.dumps(
        {"targetUserIds": ["u1"], "flowInvocationId": "evt-retry", "variables": {"plan": "premium"}}
    )
    assert (await flowhook.post(trigger, explicit)).status_code == 409


async def test_a_webhook_and_an_api_call_carrying_the_same_request_are_one_invocation(flowhook) -> None:
    flow = await flowhook.flow(publish=True)
    trigger = await flowhook.trigger(flow, mode="live", mapping={"kind": "passthrough"})
    hooked = await flowhook.post(trigger, orjson.dumps({"targetUserIds": ["k1"], "flowInvocationId": "wh-1"}))
    assert hooked.status_code == 202
    client = await flowhook.api_client()
    entry = {"target": {"usersById": ["k1"]}, "flowInvocationId": "wh-1"}
    started = await client.post(f"/v1/default/action-flow/{flow['id']}/start", json={"flows": [entry]})
    assert (started.status_code, started.headers.get("idempotent-replayed")) == (202, "true")
    assert invocations(flowhook, flow["id"]) == [("wh-1", "live", 1)]
