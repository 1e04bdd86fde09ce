"""Cards (listing, actions, expiry) and analytics events (shape, filters, pages)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio

EVENT_KEYS = {
    "id",
    "eventName",
    "timestamp",
    "environmentId",
    "endUserId",
    "flowConfigId",
    "flowInstanceId",
    "flowInvocationId",
    "cardInstanceId",
    "eventSource",
    "properties",
    "metadata",
}


async def one_card_flow(flowhook, **card_options) -> tuple[dict, dict]:
    template = await flowhook.template({"title": "t"})
    step = {"type": "send-card", "id": "s", "cardTemplateId": template["id"], "cardOptions": card_options}
    flow = await flowhook.flow([step])
    return flow, await flowhook.trigger(flow)


async def test_card_actions(flowhook) -> None:
    flow, trigger = await one_card_flow(flowhook)
    for user in ("ca-u1", "ca-u2"):
        await flowhook.test_user(user)
    await flowhook.start(trigger, ["ca-u1", "ca-u2"], metadata={"source": "crm"})
    await flowhook.settle()
    [first], [second] = await flowhook.cards("ca-u1"), await flowhook.cards("ca-u2")
    assert (await flowhook.act(first, "complete"))["status"] == "completed"
    assert (await flowhook.act(second, "dismiss"))["status"] == "dismissed"
    again = await flowhook.act(first, "dismiss", 409)
    assert again["error"]["code"] == "card_not_active"
    assert (await flowhook.ok("GET", f"/v1/default/cards/{first['cardInstanceId']}"))["status"] == "completed"
    missing = await flowhook.api.post("/v1/default/cards/crd_nope/actions", json={"action": "complete"})
    assert missing.status_code == 404
    for bad in ({"action": "like"}, {}, {"action": "complete", "extra": 1}, {"action": {}}, {"action": ["complete"]}):
        response = await flowhook.api.post(f"/v1/default/cards/{first['cardInstanceId']}/actions", json=bad)
        assert response.status_code == 422
    completed = await flowhook.events(flowId=flow["id"], eventName="card-completed")
    dismissed = await flowhook.events(flowId=flow["id"], eventName="card-dismissed")
    assert [(e["endUserId"], e["cardInstanceId"]) for e in completed] == [("ca-u1", first["cardInstanceId"])]
    assert [(e["endUserId"], e["cardInstanceId"]) for e in dismissed] == [("ca-u2", second["cardInstanceId"])]
    assert completed[0]["metadata"] == {"source": "crm"} and set(completed[0]) == EVENT_KEYS


async def test_listing_cards_by_source_and_status(flowhook) -> None:
    flow, trigger = await one_card_flow(flowhook)
    await flowhook.test_user("list-u1")
    for _ in range(3):
        await flowhook.start(trigger, ["list-u1"])
    await flowhook.settle()
    cards = await flowhook.cards("list-u1")
    assert len(cards) == 3 and [card["created"] for card in cards] == sorted(
        (c["created"] for c in cards), reverse=True
    )
    await flowhook.act(cards[0], "complete")
    assert len(await flowhook.cards("list-u1", status="active")) == 2
    assert [c["cardInstanceId"] for c in await flowhook.cards("list-u1", status="completed")] == [
        cards[0]["cardInstanceId"]
    ]
    assert await flowhook.cards("list-u1", eventSource="live") == []
    first = await flowhook.ok("GET", "/v1/default/users/list-u1/cards", params={"limit": 2})
    rest = await flowhook.ok(
        "GET", "/v1/default/users/list-u1/cards", params={"limit": 2, "cursor": first["nextCursor"]}
    )
    paged = [card["cardInstanceId"] for card in first["data"] + rest["data"]]
    assert paged == [card["cardInstanceId"] for card in cards] and rest["nextCursor"] is None
    for bad in ({"eventSource": "prod"}, {"status": "gone"}, {"cursor": "x"}, {"limit": "0"}):
        assert (await flowhook.api.get("/v1/default/users/list-u1/cards", params=bad)).status_code == 400


async def test_a_card_expires(flowhook) -> None:
    flow, trigger = await one_card_flow(flowhook, expiresAfter="PT0.2S")
    await flowhook.test_user("exp-u1")
    await flowhook.start(trigger, ["exp-u1"])
    await flowhook.settle()
    [card] = await flowhook.cards("exp-u1")
    assert card["expiresAt"] is not None

    async def expired() -> list | None:
        return await flowhook.cards("exp-u1", status="expired") or None

    await flowhook.eventually(expired)
    assert (await flowhook.act(card, "complete", 409))["error"]["code"] == "card_not_active"


async def test_analytics_filters_and_pages(flowhook) -> None:
    flow, trigger = await one_card_flow(flowhook)
    other, other_trigger = await one_card_flow(flowhook)
    for user in ("an-u1", "an-u2"):
        await flowhook.test_user(user)
    key = await flowhook.start(trigger, ["an-u1", "an-u2"])
    await flowhook.start(other_trigger, ["an-u1"])
    await flowhook.settle()
    events = await flowhook.events(flowId=flow["id"])
    assert len(events) == 6 and all(set(event) == EVENT_KEYS for event in events)
    assert {e["flowInvocationId"] for e in events} == {key}
    assert {e["endUserId"] for e in await flowhook.events(flowId=flow["id"], userId="an-u2")} == {"an-u2"}
    published = await flowhook.events(flowId=flow["id"], eventName="card-published")
    assert len(published) == 2 and all(e["cardInstanceId"] and e["properties"]["stepId"] == "s" for e in published)
    assert await flowhook.events(flowId=flow["id"], eventSource="live") == []
    assert len(await flowhook.events(userId="an-u1", eventName="action-flow-started")) >= 2
    assert await flowhook.events(flowId=flow["id"], since="2999-01-01T00:00:00Z") == []
    assert len(await flowhook.events(flowId=flow["id"], since=events[0]["timestamp"])) == 6
    assert len(await flowhook.events(flowId=flow["id"], until=events[-1]["timestamp"])) == 6  # inclusive
    assert await flowhook.events(flowId=flow["id"], until="2000-01-01T00:00:00Z") == []
    pages, cursor = [], None
    while True:
        page = await flowhook.ok(
            "GET",
            "/v1/default/analytics/events",
            params={"flowId": flow["id"], "limit": 4, **({"cursor": cursor} if cursor else {})},
        )
        pages += page["data"]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert [e["id"] for e in pages] == [e["id"] for e in events]
    for bad in ({"eventSource": "x"}, {"since": "yesterday"}, {"until": "soon"}, {"cursor": "abc"}):
        assert (await flowhook.api.get("/v1/default/analytics/events", params=bad)).status_code == 400
