"""`Idempotency-Key` on a replay: a retried replay starts the flow once, as a retried Stripe call does."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio

USER = orjson.dumps({"user": "u-1", "plan": "gold"})
BY_USER = {"kind": "jmespath", "fields": {"targetUserIds": "body.user"}}


def invocation_keys(flowhook, flow_id: str) -> list[str]:
    """The flowInvocationId of every invocation stored for the flow, read from the database file."""
    with sqlite3.connect(flowhook.data_dir / "flowhook.db") as db:
        rows = db.execute("SELECT flow_invocation_id FROM invocations WHERE flow_id = ? ORDER BY seq", (flow_id,))
        return [key for (key,) in rows]


async def replay(flowhook, request_id: str, key: str | None = None) -> dict[str, Any]:
    headers = {} if key is None else {"Idempotency-Key": key}
    response = await flowhook.api.post(f"/v1/default/requests/{request_id}/replay", headers=headers)
    assert response.status_code == 200, response.text
    outcome: dict[str, Any] = response.json()
    return outcome


async def logged_request(
    flowhook, mapping: dict[str, Any] = BY_USER, body: bytes = USER
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A new flow, a trigger of it, and the answer to one request the trigger accepted."""
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow, mapping=mapping)
    sent = await flowhook.post(trigger, body)
    assert sent.status_code == 202, sent.text
    return flow, trigger, sent.json()


async def test_the_same_key_twice_starts_the_flow_once(flowhook) -> None:
    flow, _, sent = await logged_request(flowhook)
    first = await replay(flowhook, sent["requestId"], "retry-1")
    again = await replay(flowhook, sent["requestId"], "retry-1")
    assert (first["status"], first["cause"]) == (202, "accepted")
    assert (again["status"], again["cause"]) == (202, "duplicate")
    assert again["response"] == first["response"]  # the first replay's answer, its requestId included
    assert first["response"]["requestId"] == first["requestId"] != again["requestId"]  # each replay is logged
    assert invocation_keys(flowhook, flow["id"]) == [sent["flowInvocationId"], first["response"]["flowInvocationId"]]


async def test_concurrent_replays_under_one_key_start_the_flow_once(flowhook) -> None:
    """A double click: the calls race, and the invocations' unique key still lets one through."""
    flow, _, sent = await logged_request(flowhook)
    outcomes = await asyncio.gather(*(replay(flowhook, sent["requestId"], "double-click") for _ in range(5)))
    assert sorted(outcome["cause"] for outcome in outcomes) == ["accepted"] + ["duplicate"] * 4
    assert len({orjson.dumps(outcome["response"]) for outcome in outcomes}) == 1
    assert len(invocation_keys(flowhook, flow["id"])) == 2


async def test_different_keys_start_it_once_each(flowhook) -> None:
    flow, _, sent = await logged_request(flowhook)
    one, two = await replay(flowhook, sent["requestId"], "a"), await replay(flowhook, sent["requestId"], "b")
    assert (one["cause"], two["cause"]) == ("accepted", "accepted")
    assert len(set(invocation_keys(flowhook, flow["id"]))) == 3


async def test_the_key_is_bound_to_the_replayed_request(flowhook) -> None:
    """The same key on a replay of another request is another replay, not a repeat."""
    flow, trigger, sent = await logged_request(flowhook)
    other = (await flowhook.post(trigger, USER)).json()
    first, second = await replay(flowhook, sent["requestId"], "k"), await replay(flowhook, other["requestId"], "k")
    assert (first["cause"], second["cause"]) == ("accepted", "accepted")
    assert len(set(invocation_keys(flowhook, flow["id"]))) == 4


async def test_a_mapping_changed_between_the_replays_is_a_conflict(flowhook) -> None:
    """Stripe refuses a key reused with other parameters; here the same key with another payload is a 409."""
    flow, trigger, sent = await logged_request(flowhook)
    first = await replay(flowhook, sent["requestId"], "same-key")
    changed = {"kind": "jmespath", "fields": {"targetUserIds": "body.user", "variables.plan": "body.plan"}}
    patched = await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mapping": changed})
    assert patched.status_code == 200, patched.text
    again = await replay(flowhook, sent["requestId"], "same-key")
    assert (again["status"], again["cause"]) == (409, "idempotency_conflict")
    assert again["response"]["error"]["code"] == "idempotency_conflict"
    assert invocation_keys(flowhook, flow["id"]) == [sent["flowInvocationId"], first["response"]["flowInvocationId"]]
    entry = await flowhook.entry(again["requestId"])
    assert (entry["replayOf"], entry["status"], entry["cause"]) == (sent["requestId"], 409, "idempotency_conflict")


async def test_a_mapped_flow_invocation_id_wins_over_the_key(flowhook) -> None:
    keyed = {"kind": "jmespath", "fields": {"targetUserIds": "body.user", "flowInvocationId": "body.order"}}
    flow, _, sent = await logged_request(flowhook, keyed, orjson.dumps({"user": "u-1", "order": "order-7"}))
    replays = [await replay(flowhook, sent["requestId"], key) for key in ("a", "b")]
    assert [(r["status"], r["cause"], r["response"]) for r in replays] == [(202, "duplicate", sent)] * 2
    assert invocation_keys(flowhook, flow["id"]) == ["order-7"]


async def test_without_the_header_every_replay_starts_the_flow_again(flowhook) -> None:
    flow, _, sent = await logged_request(flowhook)
    first, second = await replay(flowhook, sent["requestId"]), await replay(flowhook, sent["requestId"])
    assert (first["cause"], second["cause"]) == ("accepted", "accepted")
    assert first["response"]["flowInvocationId"] != second["response"]["flowInvocationId"]
    assert len(set(invocation_keys(flowhook, flow["id"]))) == 3


@pytest.mark.parametrize(
    "headers",
    [
        [("Idempotency-Key", "")],
        [("Idempotency-Key", "k" * 256)],
        [("Idempotency-Key", b"cl\xc3\xa9")],
        [("Idempotency-Key", "a\x01b")],
        [("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
    ],
    ids=["empty", "too-long", "not-ascii", "control-character", "repeated"],
)
async def test_an_invalid_key_is_a_400_and_replays_nothing(flowhook, headers: list[tuple[str, Any]]) -> None:
    flow, trigger, sent = await logged_request(flowhook)
    response = await flowhook.api.post(f"/v1/default/requests/{sent['requestId']}/replay", headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_idempotency_key" and "Idempotency-Key" in error["message"]
    assert invocation_keys(flowhook, flow["id"]) == [sent["flowInvocationId"]]
    assert [entry["id"] for entry in await flowhook.log(trigger)] == [sent["requestId"]]


async def test_the_longest_key_is_taken(flowhook) -> None:
    _, _, sent = await logged_request(flowhook)
    outcome = await replay(flowhook, sent["requestId"], "k" * 255)
    assert outcome["cause"] == "accepted"


async def test_the_openapi_document_describes_the_header(flowhook) -> None:
    replay_path = (await flowhook.sender().get("/openapi.json")).json()["paths"][
        "/v1/{env}/requests/{requestId}/replay"
    ]
    post = replay_path["post"]
    [header] = [parameter for parameter in post["parameters"] if parameter["in"] == "header"]
    assert header["name"] == "Idempotency-Key" and header["schema"]["maxLength"] == 255
    assert "400" in post["responses"]
