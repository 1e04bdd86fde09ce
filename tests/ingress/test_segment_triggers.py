"""Segment triggers over HTTP: managed with the other triggers, fired by their segment's entries or exits.

The app runs its executor and event dispatcher; `settle` drives both until
nothing is left, so a customer entering a segment ends with a card in front
of them. Each test's segments match only its own customers (a `cohort`
attribute of its own). Runs on SQLite, and on PostgreSQL too when
FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import sqlalchemy as sa

from ingress.api import bulk_starts
from store.clock import utcnow
from store.event_dispatch import pending
from store.tables import event_deliveries

pytestmark = pytest.mark.anyio
_cohorts = itertools.count()


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return either_database


@pytest.fixture
def cohort() -> str:
    return f"trig-{next(_cohorts)}"


async def ok(flowhook, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await flowhook.api.request(method, f"/v1/default{url}", **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def cohort_segment(flowhook, cohort: str, **extra: Any) -> dict[str, Any]:
    rules = {"all": [{"attribute": "cohort", "op": "eq", "value": cohort}]}
    for name, value in extra.items():
        rules["all"].append({"attribute": name, "op": "eq", "value": value})
    return await ok(flowhook, "POST", "/segments", 201, json={"name": cohort, "rules": rules})  # type: ignore[no-any-return]


async def segment_trigger(flowhook, flow: dict[str, Any], segment: dict[str, Any], **body: Any) -> dict[str, Any]:
    url = f"/action-flows/{flow['id']}/triggers"
    return await ok(flowhook, "POST", url, 201, json={"type": "segment", "segmentId": segment["id"], **body})  # type: ignore[no-any-return]


async def put(flowhook, user: str, attributes: dict[str, Any]) -> None:
    response = await flowhook.api.put(f"/v1/default/customers/{user}", json={"attributes": attributes})
    assert response.status_code in (200, 201), response.text


async def settle(flowhook) -> None:
    """Rounds of the dispatcher, then the executor, until a round has nothing to do (no sleeping, no timing)."""
    services = flowhook.services
    for _ in range(50):
        busy = [await services.dispatcher.drain(), (await services.executor.drain()).worked]
        if not any(busy) and not await services.store.read(lambda conn: pending(conn, 1, utcnow())):
            return
    raise AssertionError("the segment's events kept coming")


async def cards(flowhook, user: str) -> list[dict[str, Any]]:
    return (await ok(flowhook, "GET", f"/users/{user}/cards"))["data"]  # type: ignore[no-any-return]


async def deliveries(flowhook, trigger_id: str) -> list[str]:
    query = sa.select(event_deliveries.c.status).where(event_deliveries.c.trigger_id == trigger_id)
    return list(await flowhook.services.store.read(lambda conn: conn.execute(query).scalars().all()))


def refused(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_a_segment_trigger_is_created_read_changed_and_deleted(flowhook, cohort) -> None:
    flow, segment = await flowhook.card_flow("x"), await cohort_segment(flowhook, cohort)
    trigger = await segment_trigger(flowhook, flow, segment)
    assert {key: trigger[key] for key in ("type", "segmentId", "on", "mode")} == {
        "type": "segment",
        "segmentId": segment["id"],
        "on": "entered",
        "mode": "test",
    }
    assert trigger["mapping"] == {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId"}}
    assert "hookId" not in trigger and "eventName" not in trigger
    assert await ok(flowhook, "GET", f"/triggers/{trigger['id']}") == trigger
    listed = await ok(flowhook, "GET", f"/action-flows/{flow['id']}/triggers")
    assert [found["type"] for found in listed["data"]] == ["api", "segment"]
    changed = await ok(flowhook, "PATCH", f"/triggers/{trigger['id']}", json={"on": "exited", "mode": "live"})
    assert (changed["on"], changed["mode"]) == ("exited", "live")
    capture = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/capture")
    assert refused(capture) == (409, "not_a_webhook_trigger")
    assert "is a segment trigger" in capture.json()["error"]["message"]
    in_use = await flowhook.api.delete(f"/v1/default/segments/{segment['id']}")
    assert refused(in_use) == (409, "segment_in_use")
    assert trigger["id"] in in_use.json()["error"]["message"]
    await ok(flowhook, "DELETE", f"/triggers/{trigger['id']}", 204)
    await ok(flowhook, "DELETE", f"/segments/{segment['id']}", 204)


@pytest.mark.parametrize(
    ("body", "status", "code", "path"),
    [
        ({"type": "segment"}, 422, "invalid_field", "$.segmentId"),
        ({"type": "segment", "segmentId": "seg_missing"}, 422, "segment_not_found", "$.segmentId"),
        ({"type": "segment", "segmentId": "SEGMENT", "on": "left"}, 422, "invalid_field", "$.on"),
        ({"type": "segment", "segmentId": "SEGMENT", "eventName": "x"}, 422, "invalid_field", "$.eventName"),
        ({"type": "event", "eventName": "x", "segmentId": "SEGMENT"}, 422, "invalid_field", "$.segmentId"),
        ({"type": "webhook", "on": "entered"}, 422, "invalid_field", "$.on"),
    ],
)
async def test_invalid_segment_triggers_are_refused(flowhook, cohort, body, status, code, path) -> None:
    flow, segment = await flowhook.card_flow("x"), await cohort_segment(flowhook, cohort)
    body = {key: segment["id"] if value == "SEGMENT" else value for key, value in body.items()}
    response = await flowhook.api.post(f"/v1/default/action-flows/{flow['id']}/triggers", json=body)
    assert refused(response) == (status, code)
    assert response.json()["error"]["path"] == path


async def test_patching_to_an_unknown_segment_is_a_422(flowhook, cohort) -> None:
    flow, segment = await flowhook.card_flow("x"), await cohort_segment(flowhook, cohort)
    trigger = await segment_trigger(flowhook, flow, segment)
    response = await flowhook.api.patch(f"/v1/default/triggers/{trigger['id']}", json={"segmentId": "seg_gone"})
    assert refused(response) == (422, "segment_not_found")
    assert (await ok(flowhook, "GET", f"/triggers/{trigger['id']}"))["segmentId"] == segment["id"]


async def test_entering_the_segment_sends_the_card_to_a_test_user(flowhook, cohort) -> None:
    flow, segment = await flowhook.card_flow("Welcome"), await cohort_segment(flowhook, cohort, plan="pro")
    user = f"{cohort}-tester"
    await ok(flowhook, "POST", "/test-users", 201, json={"userId": user})
    trigger = await segment_trigger(flowhook, flow, segment)  # test mode: the draft, test users only
    await put(flowhook, user, {"cohort": cohort, "plan": "free"})
    await settle(flowhook)
    assert await cards(flowhook, user) == []
    await put(flowhook, user, {"cohort": cohort, "plan": "pro"})
    await settle(flowhook)
    [card] = await cards(flowhook, user)
    assert (card["definition"], card["eventSource"], card["flowConfigId"]) == ({"title": "Welcome"}, "test", flow["id"])
    assert await deliveries(flowhook, trigger["id"]) == ["accepted"]
    await put(flowhook, user, {"cohort": cohort, "plan": "pro", "seats": 3})  # stays: no second run
    await settle(flowhook)
    assert len(await cards(flowhook, user)) == 1


async def test_exiting_fires_exited_triggers_and_other_segments_triggers_stay_quiet(flowhook, cohort) -> None:
    flow, segment = await flowhook.card_flow("Come back"), await cohort_segment(flowhook, cohort, plan="pro")
    other = await cohort_segment(flowhook, f"{cohort}-other")
    exited = await segment_trigger(flowhook, flow, segment, on="exited", mode="live")
    entered = await segment_trigger(flowhook, await flowhook.card_flow("Hi"), segment, mode="live")
    elsewhere = await segment_trigger(flowhook, await flowhook.card_flow("Other"), other, mode="live")
    user = f"{cohort}-leaver"
    await put(flowhook, user, {"cohort": cohort, "plan": "pro"})
    await put(flowhook, user, {"cohort": cohort, "plan": "free"})
    await settle(flowhook)
    titles = sorted(card["definition"]["title"] for card in await cards(flowhook, user))
    assert titles == ["Come back", "Hi"]
    assert (await deliveries(flowhook, exited["id"]), await deliveries(flowhook, entered["id"])) == (
        ["accepted"],
        ["accepted"],
    )
    assert await deliveries(flowhook, elsewhere["id"]) == []


async def test_publishing_reports_the_customers_already_in_each_entered_segment(flowhook, cohort) -> None:
    segment = await cohort_segment(flowhook, cohort)
    for index in range(2):
        await put(flowhook, f"{cohort}-{index}", {"cohort": cohort})
    flow = await flowhook.card_flow("x")
    entered = await segment_trigger(flowhook, flow, segment, mode="live")
    await segment_trigger(flowhook, flow, segment, on="exited")  # an exited trigger has nobody to start now
    published = await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish")
    assert published["publishedVersion"] == 2
    assert published["segmentTriggers"] == [
        {
            "triggerId": entered["id"],
            "segmentId": segment["id"],
            "mode": "live",
            "membersNow": 2,
            "startExisting": {
                "method": "POST",
                "path": f"/v1/default/action-flows/{flow['id']}/manual-starts",
                "body": {"existingMembersOf": entered["id"]},
                "members": 2,
                "enteredBefore": entered["createdAt"],  # the flow was published before the trigger was made
            },
            "startExistingUnavailable": None,
        }
    ]
    await settle(flowhook)
    assert await cards(flowhook, f"{cohort}-0") == []  # members before the trigger are not started by it
    plain = await ok(flowhook, "POST", f"/action-flows/{(await flowhook.card_flow('y'))['id']}/publish")
    assert plain["segmentTriggers"] == []


async def follow(flowhook, offer: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Send a publish answer's `startExisting` and let the bulk runner finish the task it stores."""
    response = await flowhook.api.request(offer["method"], offer["path"], json={**offer["body"], **extra})
    assert response.status_code == 202, response.text
    url = f"/bulk-tasks/{response.json()['id']}"
    while (task := await ok(flowhook, "GET", url))["status"] not in ("done", "failed"):
        await flowhook.services.bulk_runner.drain()
    assert task["total"] == response.json()["total"]
    return task  # type: ignore[no-any-return]


async def card_counts(flowhook, *users: str) -> list[int]:
    await settle(flowhook)
    return [len(await cards(flowhook, user)) for user in users]


async def test_the_offer_starts_the_members_from_before_the_publication_and_only_them(flowhook, cohort) -> None:
    """A customer entering after the publication is the trigger's, as is one who left and came back since:
    following the offer later starts neither a second time."""
    segment = await cohort_segment(flowhook, cohort)
    old, leaver, late = (f"{cohort}-{name}" for name in ("old", "leaver", "late"))
    for user in (old, leaver):
        await put(flowhook, user, {"cohort": cohort})
    flow = await flowhook.card_flow("Welcome", publish=False)
    trigger = await segment_trigger(flowhook, flow, segment, mode="live")
    published = await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish")
    [report] = published["segmentTriggers"]
    await put(flowhook, late, {"cohort": cohort})
    await put(flowhook, leaver, {"cohort": "elsewhere"})
    await put(flowhook, leaver, {"cohort": cohort})
    assert await card_counts(flowhook, old, leaver, late) == [0, 1, 1]
    task = await follow(flowhook, report["startExisting"])
    assert (task["kind"], task["status"], task["total"], task["started"], task["skipped"]) == (
        "manual",
        "done",
        1,
        1,
        [],
    )
    assert await card_counts(flowhook, old, leaver, late) == [1, 1, 1]
    assert (report["membersNow"], report["startExisting"]["members"]) == (2, 2)
    assert report["startExisting"]["body"] == {"existingMembersOf": trigger["id"]}
    assert report["startExisting"]["enteredBefore"] == published["updatedAt"]  # this, the first publication


async def test_following_the_offer_again_starts_nobody_twice(flowhook, cohort) -> None:
    """A flow published before its trigger was made: the trigger took effect when it was made, and a later
    publication offers the members from before then, however often the offer is followed."""
    segment = await cohort_segment(flowhook, cohort)
    before, after = f"{cohort}-before", f"{cohort}-after"
    await put(flowhook, before, {"cohort": cohort})
    flow = await flowhook.card_flow("Welcome")
    trigger = await segment_trigger(flowhook, flow, segment, mode="live")
    await put(flowhook, after, {"cohort": cohort})
    assert await card_counts(flowhook, before, after) == [0, 1]
    [report] = (await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish"))["segmentTriggers"]
    first = await follow(flowhook, report["startExisting"])
    assert await card_counts(flowhook, before, after) == [1, 1]
    assert (first["total"], first["started"]) == (1, 1)
    assert (report["membersNow"], report["startExisting"]["members"]) == (2, 1)
    assert report["startExisting"]["enteredBefore"] == trigger["createdAt"]
    [again] = (await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish"))["segmentTriggers"]
    assert again["startExisting"] == report["startExisting"]
    second = await follow(flowhook, again["startExisting"])
    assert (second["total"], second["started"]) == (1, 0)
    assert [(skip["userId"], skip["code"]) for skip in second["skipped"]] == [(before, "already_started")]
    assert await card_counts(flowhook, before, after) == [1, 1]


async def test_the_offer_is_not_bounded_by_the_manual_limit(flowhook, cohort, monkeypatch) -> None:
    """Every member is offered, and started: the runner works through them a chunk at a time. (The limit of
    ordinary manual starts, 10,000, is lowered to 3 here; tests/store/test_existing_members.py starts 10,050.)"""
    monkeypatch.setattr(bulk_starts, "MAX_MANUAL", 3)
    segment = await cohort_segment(flowhook, cohort)
    members = [f"{cohort}-{n}" for n in range(5)]
    for user in members:
        await put(flowhook, user, {"cohort": cohort})
    flow = await flowhook.card_flow("Welcome", publish=False)
    await segment_trigger(flowhook, flow, segment, mode="live")
    [report] = (await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish"))["segmentTriggers"]
    plain = await flowhook.api.post(report["startExisting"]["path"], json={"segmentId": segment["id"]})
    assert refused(plain) == (422, "selection_over_limit")  # ordinary manual starts keep their limit
    guarded = await flowhook.api.post(
        report["startExisting"]["path"], json={**report["startExisting"]["body"], "limit": 4}
    )
    assert refused(guarded) == (422, "selection_over_limit")  # a limit given is still a guard
    assert (guarded.json()["error"]["selected"], guarded.json()["error"]["limit"]) == (5, 4)
    task = await follow(flowhook, report["startExisting"], limit=20_000)
    assert (task["status"], task["total"], task["processed"], task["started"]) == ("done", 5, 5, 5)
    assert await card_counts(flowhook, *members) == [1] * 5
    assert (report["membersNow"], report["startExisting"]["members"]) == (5, 5)


async def test_a_test_or_disabled_trigger_is_offered_no_live_start(flowhook, cohort) -> None:
    segment = await cohort_segment(flowhook, cohort)
    customer = f"{cohort}-customer"  # not a test user
    await put(flowhook, customer, {"cohort": cohort})
    flow = await flowhook.card_flow("Welcome", publish=False)
    tested = await segment_trigger(flowhook, flow, segment)  # test mode, the default
    disabled = await segment_trigger(flowhook, flow, segment, mode="disabled")
    published = await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish")
    reports = {report["triggerId"]: report for report in published["segmentTriggers"]}
    for trigger, why in ((tested, "is in test mode: its runs reach test users only"), (disabled, "is disabled")):
        report = reports[trigger["id"]]
        assert (report["mode"], report["membersNow"], report["startExisting"]) == (trigger["mode"], 1, None)
        assert report["startExistingUnavailable"]["code"] == "trigger_not_live"
        assert f"the trigger {trigger['id']} {why}" in report["startExistingUnavailable"]["reason"]
        anyway = await flowhook.api.post(
            f"/v1/default/action-flows/{flow['id']}/manual-starts", json={"existingMembersOf": trigger["id"]}
        )
        assert refused(anyway) == (409, "trigger_not_live")
        assert anyway.json()["error"]["message"] == report["startExistingUnavailable"]["reason"]
    assert await card_counts(flowhook, customer) == [0]
    await ok(flowhook, "PATCH", f"/triggers/{tested['id']}", json={"mode": "live"})
    offer = {
        "method": "POST",
        "path": f"/v1/default/action-flows/{flow['id']}/manual-starts",
        "body": {"existingMembersOf": tested["id"]},
    }
    assert (await follow(flowhook, offer))["started"] == 1  # live now: its members from before the publication
    await settle(flowhook)
    [card] = await cards(flowhook, customer)
    assert card["eventSource"] == "live"


async def test_existing_members_of_what_is_not_a_segment_trigger_of_the_flow_are_refused(flowhook, cohort) -> None:
    segment = await cohort_segment(flowhook, cohort)
    flow, other = await flowhook.card_flow("x"), await flowhook.card_flow("y")
    exited = await segment_trigger(flowhook, flow, segment, on="exited", mode="live")
    elsewhere = await segment_trigger(flowhook, other, segment, mode="live")
    url = f"/v1/default/action-flows/{flow['id']}/manual-starts"
    for named in (exited["id"], elsewhere["id"], f"api_{flow['id']}", ""):
        response = await flowhook.api.post(url, json={"existingMembersOf": named})
        assert refused(response) == (422, "invalid_field")
        assert response.json()["error"]["path"] == "$.existingMembersOf"
    missing = await flowhook.api.post(url, json={"existingMembersOf": "trg_gone"})
    assert refused(missing) == (404, "trigger_not_found")
    zero = await flowhook.api.post(url, json={"existingMembersOf": elsewhere["id"], "limit": 0})
    assert refused(zero) == (422, "invalid_field") and zero.json()["error"]["path"] == "$.limit"
