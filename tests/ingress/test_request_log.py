"""The request log: filters, cursor pages, bounded retention, replay."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import pytest
from sqlalchemy.engine import Connection

from ingress.retention import REQUEST_LOG, LogRetention
from store import Store

T = TypeVar("T")

pytestmark = pytest.mark.anyio

RETENTION = 5
OK = orjson.dumps({"targetUserIds": ["u1"]})
INVALID = orjson.dumps({"targetUserIds": []})


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"request_log_retention": RETENTION, "prune_interval_seconds": 3600.0}


async def test_filters_by_status_class_and_cause(flowhook) -> None:
    trigger = await flowhook.trigger(allowedIps=["203.0.113.0/24"])
    await flowhook.post(trigger, OK)
    await flowhook.post(trigger, INVALID)
    await flowhook.post(trigger, OK, ip="192.0.2.1")
    await flowhook.post(trigger, b"{", content_type="application/json")
    assert [e["status"] for e in await flowhook.log(trigger, status="4xx")] == [400, 403, 422]
    assert [e["cause"] for e in await flowhook.log(trigger, status="202")] == ["accepted"]
    assert [e["status"] for e in await flowhook.log(trigger, cause="ip_not_allowed")] == [403]
    for bad in ({"status": "abc"}, {"cause": "nope"}, {"limit": "0"}):
        response = await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/requests", params=bad)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_parameter"
    missing = await flowhook.api.get("/v1/default/triggers/trg_missing/requests")
    assert missing.status_code == 404


async def test_cursor_pages_walk_the_log_newest_first(flowhook) -> None:
    trigger = await flowhook.trigger()
    ids = [(await flowhook.post(trigger, OK)).json()["requestId"] for _ in range(RETENTION)]
    url = f"/v1/default/triggers/{trigger['id']}/requests"
    seen: list[str] = []
    cursor = None
    while True:
        page = (await flowhook.api.get(url, params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [entry["id"] for entry in page["data"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def page(flowhook, url: str, **params: Any) -> dict[str, Any]:
    response = await flowhook.api.get(url, params=params)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_a_cursor_pages_only_the_listing_it_came_from(flowhook) -> None:
    """Reused with another trigger or filter, it is a 400 `invalid_cursor`, never a page of something else."""
    trigger, other = await flowhook.trigger(), await flowhook.trigger()
    accepted = [(await flowhook.post(trigger, OK)).json()["requestId"] for _ in range(2)]
    refused = [(await flowhook.post(trigger, INVALID)).json()["error"]["requestId"] for _ in range(3)]
    url = f"/v1/default/triggers/{trigger['id']}/requests"
    since = "2000-01-01T00:00:00Z"
    first = await page(flowhook, url, status="4xx", since=since, limit=1)
    cursor = first["nextCursor"]
    # The same listing: the same filters (a time written in another zone is the same instant), any page size.
    rest = await page(flowhook, url, status="4xx", since="2000-01-01T05:00:00+05:00", limit=5, cursor=cursor)
    assert [entry["id"] for entry in first["data"] + rest["data"]] == list(reversed(refused))
    same_listing = await page(flowhook, "/v1/default/requests", triggerId=trigger["id"], status="4xx", since=since)
    assert [entry["id"] for entry in same_listing["data"]] == list(reversed(refused))
    for elsewhere, params in [
        (url, {"status": "202", "since": since}),
        (url, {"status": "422", "since": since}),
        (url, {"status": "4xx", "since": since, "cause": "validation_error"}),
        (url, {"status": "4xx"}),
        (url, {"status": "4xx", "since": since, "until": "2999-01-01T00:00:00Z"}),
        (f"/v1/default/triggers/{other['id']}/requests", {"status": "4xx", "since": since}),
        ("/v1/default/requests", {"status": "4xx", "since": since}),
    ]:
        response = await flowhook.api.get(elsewhere, params={**params, "cursor": cursor})
        assert response.status_code == 400, (elsewhere, params)
        error = response.json()["error"]
        assert (set(error), error["code"]) == ({"code", "message"}, "invalid_cursor")
        assert "another listing" in error["message"]
    assert [entry["id"] for entry in (await page(flowhook, url, status="202"))["data"]] == list(reversed(accepted))


async def test_a_malformed_altered_or_old_cursor_is_400(flowhook) -> None:
    trigger = await flowhook.trigger()
    for _ in range(3):
        await flowhook.post(trigger, OK)
    url = f"/v1/default/triggers/{trigger['id']}/requests"
    cursor = (await page(flowhook, url, limit=1))["nextCursor"]
    altered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    ahead = (await page(flowhook, url, limit=2))["nextCursor"]
    spliced = ahead[:11] + cursor[11:]  # another position under this listing's digest
    malformed = ["x", cursor + "AAAA", cursor[:-4], "é" * len(cursor), cursor + "!"]
    for bad in [altered, spliced, *malformed, "12345"]:
        response = await flowhook.api.get(url, params={"cursor": bad})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_cursor"), bad
    old = (await flowhook.api.get(url, params={"cursor": "12345"})).json()["error"]["message"]
    assert "earlier version" in old and "without a cursor" in old
    unknown_trigger = await flowhook.api.get("/v1/default/triggers/trg_missing/requests", params={"cursor": "x"})
    assert unknown_trigger.status_code == 400  # the parameters are checked first, as for a bad status


async def test_the_openapi_document_describes_the_cursor_400(flowhook) -> None:
    paths = (await flowhook.sender().get("/openapi.json")).json()["paths"]
    for path in ("/v1/{env}/triggers/{triggerId}/requests", "/v1/{env}/requests"):
        listing = paths[path]["get"]
        refused = listing["responses"]["400"]
        assert "invalid_cursor" in refused["description"]
        assert refused["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        [cursor] = [parameter for parameter in listing["parameters"] if parameter["name"] == "cursor"]
        assert "invalid_cursor" in cursor["description"]


async def test_the_environment_log_spans_triggers(flowhook) -> None:
    one, two = await flowhook.trigger(), await flowhook.trigger()
    first = (await flowhook.post(one, OK)).json()["requestId"]
    second = (await flowhook.post(two, OK)).json()["requestId"]
    listed = (await flowhook.api.get("/v1/default/requests", params={"limit": 2})).json()["data"]
    assert [entry["id"] for entry in listed] == [second, first]
    only = (await flowhook.api.get("/v1/default/requests", params={"triggerId": one["id"]})).json()["data"]
    assert [entry["id"] for entry in only] == [first]


async def test_outputs_that_are_not_trigger_requests_are_logged_as_returned_and_listed(flowhook) -> None:
    """A list, a string, a numeric key: refused (422), kept in the log as they were, and the lists still load."""
    trigger = await flowhook.trigger(mapping={"kind": "passthrough"})
    bodies = [b"[1, 2]", b'"text"', orjson.dumps({"targetUserIds": ["u1"], "flowInvocationId": 7})]
    request_ids = []
    for body in bodies:
        response = await flowhook.post(trigger, body)
        assert response.status_code == 422, response.text
        request_ids.append(response.json()["error"]["requestId"])
    for url in (f"/v1/default/triggers/{trigger['id']}/requests", "/v1/default/requests"):
        listed = await flowhook.api.get(url, params={"cause": "validation_error", "limit": 200})
        assert listed.status_code == 200, listed.text
        summaries = {entry["id"]: entry for entry in listed.json()["data"]}
        assert all(summaries[request_id]["flowInvocationId"] is None for request_id in request_ids)
    outputs = [(await flowhook.entry(request_id))["output"] for request_id in request_ids]
    assert outputs == [[1, 2], "text", {"targetUserIds": ["u1"], "flowInvocationId": 7}]


async def test_an_entry_keeps_what_arrived_and_what_it_became(flowhook) -> None:
    trigger = await flowhook.trigger(
        mapping={"kind": "jmespath", "fields": {"targetUserIds": "body.user", "flowInvocationId": "body.id"}}
    )
    body = orjson.dumps({"user": "u-1", "id": "evt-1"})
    response = await flowhook.post(trigger, body, x_api_key="key-123", x_request_id="r-9")
    entry = await flowhook.entry(response.json()["requestId"])
    assert entry["body"] == body.decode() and entry["bodyBytes"] == len(body) and not entry["bodyTruncated"]
    assert entry["headers"]["x-api-key"] == "[redacted]" and entry["headers"]["x-request-id"] == "r-9"
    assert entry["clientIp"] == "203.0.113.7"
    assert entry["output"] == {"targetUserIds": ["u-1"], "flowInvocationId": "evt-1"}
    assert entry["invocationId"].startswith("inv_") and entry["flowInvocationId"] == "evt-1"
    assert entry["response"] == response.json()
    assert entry["receivedAt"].endswith("Z")


async def test_retention_keeps_the_newest_entries_per_trigger(flowhook) -> None:
    busy, quiet = await flowhook.trigger(), await flowhook.trigger()
    ids = [(await flowhook.post(busy, OK)).json()["requestId"] for _ in range(RETENTION + 3)]
    kept_quiet = (await flowhook.post(quiet, OK)).json()["requestId"]
    await flowhook.services.retention.prune_noted()
    assert [entry["id"] for entry in await flowhook.log(busy)] == list(reversed(ids))[:RETENTION]
    assert [entry["id"] for entry in await flowhook.log(quiet)] == [kept_quiet]
    assert (await flowhook.api.get(f"/v1/default/requests/{ids[0]}")).status_code == 404


class CountedWrites:
    """The service's store, counting the writes made through it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.writes = 0

    async def write(self, operation: Callable[[Connection], T]) -> T:
        self.writes += 1
        return await self._store.write(operation)


async def test_a_large_backlog_is_pruned_a_chunk_per_transaction(flowhook) -> None:
    trigger = await flowhook.trigger()
    ids = [(await flowhook.post(trigger, OK)).json()["requestId"] for _ in range(RETENTION + 7)]
    store = CountedWrites(flowhook.services.store)
    chunked = LogRetention(store, REQUEST_LOG, RETENTION, 3600.0, chunk=2)  # type: ignore[arg-type]
    chunked.note(trigger["id"])
    assert await chunked.prune_noted() == 7
    assert store.writes == 4  # 2 + 2 + 2 + 1, each its own transaction: the writer was free in between
    assert [entry["id"] for entry in await flowhook.log(trigger)] == list(reversed(ids))[:RETENTION]


class FailingOnce(CountedWrites):
    """The service's store, failing its first write as a store that is down does."""

    async def write(self, operation: Callable[[Connection], T]) -> T:
        self.writes += 1
        if self.writes == 1:
            raise sqlite3.OperationalError("unable to open database file")
        return await self._store.write(operation)


async def test_a_failed_pass_leaves_its_triggers_to_the_next(flowhook) -> None:
    trigger = await flowhook.trigger()
    ids = [(await flowhook.post(trigger, OK)).json()["requestId"] for _ in range(RETENTION + 2)]
    store = FailingOnce(flowhook.services.store)
    retention = LogRetention(store, REQUEST_LOG, RETENTION, 3600.0)  # type: ignore[arg-type]
    retention.note(trigger["id"])
    with pytest.raises(sqlite3.OperationalError):
        await retention.prune_noted()
    assert await retention.prune_noted() == 2  # nothing new was logged to it: the failed pass kept it
    assert [entry["id"] for entry in await flowhook.log(trigger)] == list(reversed(ids))[:RETENTION]


async def test_replay_runs_the_current_configuration(flowhook) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow, mapping={"kind": "jmespath", "fields": {"targetUserIds": "body.who"}})
    failed = await flowhook.post(trigger, orjson.dumps({"user": "u-5"}))
    assert failed.status_code == 422
    fixed = {"kind": "jmespath", "fields": {"targetUserIds": "body.user"}}
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mapping": fixed})
    request_id = failed.json()["error"]["requestId"]
    replay = await flowhook.api.post(f"/v1/default/requests/{request_id}/replay")
    assert replay.status_code == 200, replay.text
    outcome = replay.json()
    assert (outcome["replayOf"], outcome["status"], outcome["cause"]) == (request_id, 202, "accepted")
    assert outcome["response"]["mode"] == "test"
    entry = await flowhook.entry(outcome["requestId"])
    assert (entry["replayOf"], entry["output"]) == (request_id, {"targetUserIds": ["u-5"]})
    await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"mode": "disabled"})
    disabled = (await flowhook.api.post(f"/v1/default/requests/{request_id}/replay")).json()
    assert (disabled["status"], disabled["cause"]) == (403, "trigger_disabled")


async def test_replay_of_a_keyed_request_is_idempotent(flowhook) -> None:
    trigger = await flowhook.trigger()
    first = await flowhook.post(trigger, orjson.dumps({"targetUserIds": ["u1"], "flowInvocationId": "once"}))
    replay = (await flowhook.api.post(f"/v1/default/requests/{first.json()['requestId']}/replay")).json()
    assert (replay["status"], replay["cause"], replay["response"]) == (202, "duplicate", first.json())


async def test_requests_that_failed_authentication_cannot_be_replayed(flowhook) -> None:
    trigger = await flowhook.trigger(verification={"preset": "github", "secret": "replay-secret"})
    forged = await flowhook.post(trigger, OK, x_hub_signature_256="sha256=00")
    response = await flowhook.api.post(f"/v1/default/requests/{forged.json()['error']['requestId']}/replay")
    assert response.status_code == 409 and response.json()["error"]["code"] == "replay_not_allowed"
    unknown = await flowhook.api.post("/v1/default/requests/req_missing/replay")
    assert unknown.status_code == 404


async def test_since_and_until_bound_the_time_received(flowhook) -> None:
    """Inclusive at the precision times are shown in: a receivedAt copied into `until` keeps its entry."""
    trigger = await flowhook.trigger()
    first = (await flowhook.post(trigger, OK)).json()["requestId"]
    received = (await flowhook.entry(first))["receivedAt"]  # to the millisecond, e.g. 2026-11-27T08:00:00.123Z
    second = (await flowhook.post(trigger, OK)).json()["requestId"]
    assert first in [entry["id"] for entry in await flowhook.log(trigger, since=received)]
    same_millisecond = (await flowhook.entry(second))["receivedAt"] == received
    expected = [second, first] if same_millisecond else [first]
    assert [entry["id"] for entry in await flowhook.log(trigger, until=received)] == expected
    assert await flowhook.log(trigger, since="2999-01-01T00:00:00Z") == []
    assert await flowhook.log(trigger, until="2000-01-01T00:00:00") == []  # no zone: UTC
    assert {entry["id"] for entry in await flowhook.log(trigger, since="2000-01-01T00:00:00+05:00")} == {first, second}
    for bad in ("yesterday", "2026-13-01"):
        response = await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}/requests", params={"until": bad})
        assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_parameter")
        assert "until" in response.json()["error"]["message"]


SLOW_SOURCE = """
function map(request) {
  const until = Date.now() + 600;
  while (Date.now() < until) {}
  return request.body.valid ? {targetUserIds: ["u1"]} : {targetUserIds: []};
}
"""


async def test_a_request_still_in_flight_when_its_trigger_is_deleted_is_refused_and_kept_as_an_unknown_hooks(
    flowhook,
) -> None:
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow, mapping={"kind": "javascript", "source": SLOW_SOURCE})
    valid, invalid = (orjson.dumps({"valid": flag}) for flag in (True, False))
    in_flight = [asyncio.create_task(flowhook.post(trigger, body)) for body in (valid, invalid)]
    await asyncio.sleep(0.2)  # both are being mapped
    assert (await flowhook.api.delete(f"/v1/default/triggers/{trigger['id']}")).status_code == 204
    accepted_late, refused = await asyncio.gather(*in_flight)
    assert (accepted_late.status_code, accepted_late.json()["error"]["code"]) == (404, "hook_not_found")
    assert refused.status_code == 422  # answered as it was: only where it is logged changes
    for response in (accepted_late, refused):
        entry = await flowhook.entry(response.json()["error"]["requestId"])
        assert (entry["triggerId"], entry["hookId"]) == (None, trigger["hookId"])
    with sqlite3.connect(flowhook.data_dir / "flowhook.db") as db:
        stored = db.execute("SELECT count(*) FROM invocations WHERE flow_id = ?", (flow["id"],)).fetchone()[0]
    assert stored == 0
