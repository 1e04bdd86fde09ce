"""Replaying many logged requests at once: `POST /v1/{env}/triggers/{triggerId}/requests/replay`.

The recovery a Svix or Hookdeck user expects after fixing a mapping: the
refused requests, selected by the listing's filters, run again in the order
they arrived, a page at a time, safely repeatable under an Idempotency-Key.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import pytest

pytestmark = pytest.mark.anyio

BY_WHO = {"kind": "jmespath", "fields": {"targetUserIds": "body.who"}}  # the broken mapping
BY_USER = {"kind": "jmespath", "fields": {"targetUserIds": "body.user", "variables.n": "body.n"}}


def invocations(flowhook, flow_id: str) -> list[tuple[str, Any]]:
    """(user, n) of every invocation stored for the flow, in the order stored, read from the database file."""
    with sqlite3.connect(flowhook.data_dir / "flowhook.db") as db:
        rows = db.execute("SELECT payload FROM invocations WHERE flow_id = ? ORDER BY seq", (flow_id,))
        payloads = [orjson.loads(payload) for (payload,) in rows]
    return [(payload["targetUserIds"][0], payload.get("variables", {}).get("n")) for payload in payloads]


async def bulk_replay(flowhook, trigger: dict[str, Any], key: str | None = None, **query: Any) -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    url = f"/v1/default/triggers/{trigger['id']}/requests/replay"
    return await flowhook.api.post(url, params=query, headers=headers)


async def refused_requests(flowhook, count: int) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """A flow and a trigger whose mapping refused `count` requests (422 mapping output), then was fixed."""
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow, mapping=BY_WHO)
    ids = []
    for n in range(count):
        sent = await flowhook.post(trigger, orjson.dumps({"user": f"u-{n}", "n": n}))
        assert sent.status_code == 422, sent.text
        ids.append(sent.json()["error"]["requestId"])
    fixed = await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mapping": BY_USER})
    assert fixed.status_code == 200, fixed.text
    return flow, trigger, ids


async def test_refused_requests_run_again_in_the_order_they_arrived(flowhook) -> None:
    flow, trigger, ids = await refused_requests(flowhook, 5)
    answered = await bulk_replay(flowhook, trigger, status="422")
    assert answered.status_code == 200, answered.text
    page = answered.json()
    assert page["nextCursor"] is None
    assert [item["replayOf"] for item in page["data"]] == ids
    assert {(item["status"], item["cause"]) for item in page["data"]} == {(202, "accepted")}
    assert invocations(flowhook, flow["id"]) == [(f"u-{n}", n) for n in range(5)]
    entry = await flowhook.entry(page["data"][0]["requestId"])
    assert entry["replayOf"] == ids[0]


async def test_pages_follow_the_cursor_and_replays_are_left_out(flowhook) -> None:
    flow, trigger, ids = await refused_requests(flowhook, 5)
    first = (await bulk_replay(flowhook, trigger, status="4xx", limit=2)).json()
    assert [item["replayOf"] for item in first["data"]] == ids[:2]
    second = (await bulk_replay(flowhook, trigger, status="4xx", limit=2, cursor=first["nextCursor"])).json()
    third = (await bulk_replay(flowhook, trigger, status="4xx", limit=2, cursor=second["nextCursor"])).json()
    assert [item["replayOf"] for item in second["data"] + third["data"]] == ids[2:]
    assert third["nextCursor"] is None
    again = (await bulk_replay(flowhook, trigger)).json()  # replays, and the requests they recovered, are passed over
    assert again == {"data": [], "nextCursor": None}
    assert len(invocations(flowhook, flow["id"])) == 5


async def test_a_request_a_replay_did_not_recover_is_taken_again(flowhook) -> None:
    flow, trigger, ids = await refused_requests(flowhook, 2)
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mapping": BY_WHO})  # broken again
    single = await flowhook.api.post(f"/v1/default/requests/{ids[0]}/replay")
    assert single.json()["status"] == 422
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mapping": BY_USER})
    page = (await bulk_replay(flowhook, trigger)).json()
    assert [(item["replayOf"], item["cause"]) for item in page["data"]] == [(ids[0], "accepted"), (ids[1], "accepted")]
    assert (await bulk_replay(flowhook, trigger)).json()["data"] == []


async def test_the_same_key_makes_a_retried_call_start_nothing(flowhook) -> None:
    """A client that lost the answer calls again: what the first call recovered is passed over, and with
    the same key a replay racing it (or one the first call made but never answered) repeats, not restarts."""
    flow, trigger, ids = await refused_requests(flowhook, 3)
    first = (await bulk_replay(flowhook, trigger, key="recover-1", status="422")).json()
    assert [item["cause"] for item in first["data"]] == ["accepted"] * 3
    single = (
        await flowhook.api.post(f"/v1/default/requests/{ids[0]}/replay", headers={"Idempotency-Key": "recover-1"})
    ).json()
    assert single["cause"] == "duplicate"
    assert (await bulk_replay(flowhook, trigger, key="recover-1", status="422")).json()["data"] == []
    assert invocations(flowhook, flow["id"]) == [(f"u-{n}", n) for n in range(3)]


async def test_filters_select_what_is_replayed(flowhook) -> None:
    flow, trigger, ids = await refused_requests(flowhook, 2)
    accepted = await flowhook.post(trigger, orjson.dumps({"user": "u-ok", "n": 9}))
    assert accepted.status_code == 202
    since = (await flowhook.entry(ids[1]))["receivedAt"]
    page = (await bulk_replay(flowhook, trigger, status="422", cause="validation_error", since=since)).json()
    assert [item["replayOf"] for item in page["data"]] == [ids[1]]
    none = (await bulk_replay(flowhook, trigger, cause="mapping_error")).json()
    assert none == {"data": [], "nextCursor": None}


async def test_without_filters_only_refused_requests_are_replayed(flowhook) -> None:
    """Accepted, duplicate, captured and skipped requests started what they should (or nothing, on purpose):
    running them again would start flows twice."""
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow, mapping=BY_USER)
    for n in range(2):
        assert (await flowhook.post(trigger, orjson.dumps({"user": f"u-{n}", "n": n}))).status_code == 202
    await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    captured = await flowhook.post(trigger, orjson.dumps({"user": "u-sample", "n": 7}))
    assert captured.json()["captured"] is True
    refused = await flowhook.post(trigger, orjson.dumps({"n": 8}))  # no user: 422
    assert refused.status_code == 422
    page = (await bulk_replay(flowhook, trigger)).json()
    assert [(item["replayOf"], item["status"]) for item in page["data"]] == [
        (refused.json()["error"]["requestId"], 422)
    ]
    assert invocations(flowhook, flow["id"]) == [("u-0", 0), ("u-1", 1)]


async def test_requests_that_cannot_be_replayed_are_skipped_not_fatal(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow, verification={"preset": "github", "secret": "bulk-secret"})
    forged = await flowhook.post(trigger, b'{"targetUserIds": ["u"]}', x_hub_signature_256="sha256=00")
    assert forged.status_code == 401
    page = (await bulk_replay(flowhook, trigger)).json()
    assert page["data"] == [
        {
            "replayOf": forged.json()["error"]["requestId"],
            "skipped": "replay_not_allowed",
            "message": "only requests that passed the trigger's IP and signature checks can be replayed",
        }
    ]
    assert invocations(flowhook, flow["id"]) == []


async def test_a_disabled_trigger_answers_each_replay_as_a_sender_would_be(flowhook) -> None:
    _, trigger, ids = await refused_requests(flowhook, 1)
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mode": "disabled"})
    page = (await bulk_replay(flowhook, trigger)).json()
    assert [(item["replayOf"], item["status"], item["cause"]) for item in page["data"]] == [
        (ids[0], 403, "trigger_disabled")
    ]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": "101"}, "invalid_parameter"),
        ({"status": "22"}, "invalid_parameter"),
        ({"status": "٤٢٢"}, "invalid_parameter"),  # Arabic-Indic digits: str.isdigit takes them
        ({"cause": "nope"}, "invalid_parameter"),
        ({"cursor": "garbage"}, "invalid_cursor"),
        ({"status": "202"}, "invalid_parameter"),  # only refused requests are replayed in bulk
        ({"status": "2xx"}, "invalid_parameter"),
        ({"cause": "accepted"}, "invalid_parameter"),
        ({"cause": "captured"}, "invalid_parameter"),
        ({"stauts": "422"}, "unknown_parameter"),  # a misspelt filter would widen what is replayed
    ],
)
async def test_bad_parameters_are_a_400_and_replay_nothing(flowhook, query: dict[str, str], code: str) -> None:
    flow, trigger, _ = await refused_requests(flowhook, 1)
    answered = await bulk_replay(flowhook, trigger, **query)
    assert (answered.status_code, answered.json()["error"]["code"]) == (400, code)
    assert invocations(flowhook, flow["id"]) == []


async def test_filters_sent_as_a_body_are_refused_not_ignored(flowhook) -> None:
    flow, trigger, _ = await refused_requests(flowhook, 1)
    url = f"/v1/default/triggers/{trigger['id']}/requests/replay"
    answered = await flowhook.api.post(url, json={"status": 422, "cause": "mapping_error"})
    assert (answered.status_code, answered.json()["error"]["code"]) == (400, "invalid_body")
    assert "query string" in answered.json()["error"]["message"]
    assert invocations(flowhook, flow["id"]) == []


async def test_a_cursor_of_the_listing_is_not_a_cursor_of_the_replay(flowhook) -> None:
    _, trigger, _ = await refused_requests(flowhook, 3)
    listing = (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/requests", params={"limit": 1})).json()
    answered = await bulk_replay(flowhook, trigger, limit=1, cursor=listing["nextCursor"])
    assert (answered.status_code, answered.json()["error"]["code"]) == (400, "invalid_cursor")


async def test_triggers_without_a_request_log_and_unknown_ones(flowhook) -> None:
    flow = await flowhook.flow()
    for trigger_id in (f"api_{flow['id']}",):
        answered = await flowhook.api.post(f"/v1/default/triggers/{trigger_id}/requests/replay")
        assert (answered.status_code, answered.json()["error"]["code"]) == (409, "not_a_webhook_trigger")
    missing = await flowhook.api.post("/v1/default/triggers/trg_missing/requests/replay")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "trigger_not_found")
    unauthorized = await flowhook.sender().post(f"/v1/default/triggers/{flow['id']}/requests/replay")
    assert unauthorized.status_code == 401
