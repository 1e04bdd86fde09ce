"""Every paged listing's cursor is bound to the listing it came from (docs/webhooks.md, "Request log").

The request log, a user's cards and analytics events: a cursor sent with
another environment, path id, filter or listing, altered, or an earlier
version's bare number is a 400 `invalid_cursor`; the same listing pages to
its end whatever the page size. The request log's filters have their own
tests in tests/ingress/test_request_log.py.
"""

from __future__ import annotations

from base64 import urlsafe_b64decode
from typing import Any

import pytest

from ingress.api.cursors import Binding

pytestmark = pytest.mark.anyio

OTHER_ENV = "cursors"
SINCE = "2000-01-01T00:00:00Z"


async def card_flow(flowhook) -> tuple[dict[str, Any], dict[str, Any]]:
    template = await flowhook.template({"title": "t"})
    flow = await flowhook.flow([{"type": "send-card", "id": "s", "cardTemplateId": template["id"]}])
    return flow, await flowhook.trigger(flow)


async def cards_for(flowhook, users: list[str], runs: int) -> dict[str, Any]:
    """`runs` cards for each of `users` (made test users if they are not yet), from a new flow; the flow."""
    flow, trigger = await card_flow(flowhook)
    for user in users:
        response = await flowhook.api.post("/v1/default/test-users", json={"userId": user})
        assert response.status_code in (201, 409), response.text
    for _ in range(runs):
        await flowhook.start(trigger, users)
    await flowhook.settle()
    return flow


async def other_environment(flowhook) -> str:
    response = await flowhook.api.post("/v1/environments", json={"id": OTHER_ENV})
    assert response.status_code in (201, 409), response.text
    return OTHER_ENV


async def walk(flowhook, url: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a listing, page after page of `limit`, following `nextCursor` to its end."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await flowhook.ok(
            "GET", url, params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        )
        assert len(page["data"]) <= limit
        items += page["data"]
        cursor = page["nextCursor"]
        if cursor is None:
            return items


async def refused(flowhook, url: str, params: dict[str, Any]) -> str:
    """The message of the 400 `invalid_cursor` the listing must answer."""
    response = await flowhook.api.get(url, params=params)
    assert response.status_code == 400, (url, params, response.text)
    error = response.json()["error"]
    assert (set(error), error["code"]) == ({"code", "message"}, "invalid_cursor"), (url, params)
    message: str = error["message"]
    return message


def ids(items: list[dict[str, Any]], key: str = "id") -> list[str]:
    return [item[key] for item in items]


async def test_a_users_cards_page_to_the_end_and_refuse_a_cursor_of_another_listing(flowhook) -> None:
    await cards_for(flowhook, ["cur-u1", "cur-u2"], runs=3)
    url = "/v1/default/users/cur-u1/cards"
    cards = await flowhook.cards("cur-u1")
    assert len(cards) == 3
    for limit in (1, 2, 3):
        assert ids(await walk(flowhook, url, limit), "cardInstanceId") == ids(cards, "cardInstanceId")
    listing = {"eventSource": "test", "status": "active"}
    first = await flowhook.ok("GET", url, params={**listing, "limit": 1})
    cursor = first["nextCursor"]
    rest = await flowhook.ok("GET", url, params={**listing, "limit": 5, "cursor": cursor})  # `limit` may change
    assert ids(first["data"] + rest["data"], "cardInstanceId") == ids(cards, "cardInstanceId")
    assert rest["nextCursor"] is None
    env = await other_environment(flowhook)
    for elsewhere, params in [
        ("/v1/default/users/cur-u2/cards", listing),
        (f"/v1/{env}/users/cur-u1/cards", listing),
        (url, {"eventSource": "test", "status": "completed"}),
        (url, {"eventSource": "live", "status": "active"}),
        (url, {"eventSource": "test"}),
        (url, {"status": "active"}),
        ("/v1/default/analytics/events", {}),
        ("/v1/default/requests", {}),
    ]:
        assert "another listing" in await refused(flowhook, elsewhere, {**params, "cursor": cursor})


async def test_analytics_events_page_to_the_end_and_refuse_a_cursor_of_another_listing(flowhook) -> None:
    flow = await cards_for(flowhook, ["cur-a1", "cur-a2"], runs=1)
    other = await cards_for(flowhook, ["cur-a1"], runs=1)
    url = "/v1/default/analytics/events"
    events = await flowhook.events(flowId=flow["id"])
    assert len(events) == 6
    for limit in (1, 4, 6):
        assert ids(await walk(flowhook, url, limit, flowId=flow["id"])) == ids(events)
    mine = await flowhook.events(flowId=flow["id"], userId="cur-a1")
    assert ids(await walk(flowhook, url, 1, flowId=flow["id"], userId="cur-a1")) == ids(mine)
    listing = {"flowId": flow["id"], "eventSource": "test", "since": SINCE, "until": "2999-01-01T00:00:00Z"}
    first = await flowhook.ok("GET", url, params={**listing, "limit": 2})
    cursor = first["nextCursor"]
    # The same listing: a time written in another zone is the same instant, and `limit` may change.
    same = {**listing, "since": "2000-01-01T05:00:00+05:00", "limit": 10, "cursor": cursor}
    rest = await flowhook.ok("GET", url, params=same)
    assert ids(first["data"] + rest["data"]) == ids(events) and rest["nextCursor"] is None
    env = await other_environment(flowhook)
    for elsewhere, params in [
        (url, {**listing, "flowId": other["id"]}),
        (url, {**listing, "eventName": "card-published"}),
        (url, {**listing, "eventSource": "live"}),
        (url, {**listing, "userId": "cur-a1"}),
        (url, {**listing, "since": "2000-01-01T00:00:01Z"}),
        (url, {key: value for key, value in listing.items() if key != "until"}),
        (url, {}),
        (f"/v1/{env}/analytics/events", listing),
        ("/v1/default/users/cur-a1/cards", {}),
        ("/v1/default/requests", {}),
    ]:
        assert "another listing" in await refused(flowhook, elsewhere, {**params, "cursor": cursor})


async def test_a_request_log_cursor_is_bound_to_its_environment(flowhook) -> None:
    await cards_for(flowhook, ["cur-r1"], runs=2)  # two webhook requests at least
    cursor = (await flowhook.ok("GET", "/v1/default/requests", params={"limit": 1}))["nextCursor"]
    env = await other_environment(flowhook)
    assert "another listing" in await refused(flowhook, f"/v1/{env}/requests", {"cursor": cursor})


@pytest.mark.parametrize(
    "url", ["/v1/default/users/cur-t1/cards", "/v1/default/analytics/events", "/v1/default/requests"]
)
async def test_an_altered_malformed_or_old_cursor_is_refused(flowhook, url: str) -> None:
    await cards_for(flowhook, ["cur-t1"], runs=3)
    cursor = (await flowhook.ok("GET", url, params={"limit": 1}))["nextCursor"]
    ahead = (await flowhook.ok("GET", url, params={"limit": 2}))["nextCursor"]
    altered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    spliced = ahead[:11] + cursor[11:]  # another position under this listing's digest
    for bad in [altered, spliced, "x", cursor + "AAAA", cursor[:-4], "é" * len(cursor), cursor + "!"]:
        await refused(flowhook, url, {"cursor": bad})
    old = await refused(flowhook, url, {"cursor": "12345"})
    assert "earlier version" in old and "without a cursor" in old


async def test_a_made_up_cursor_past_a_64_bit_sequence_is_a_400(flowhook) -> None:
    """The digest is public, so a cursor can be made for any position; one no store can hold is refused, not a 500."""
    await cards_for(flowhook, ["cur-m1"], runs=2)
    issued = (await flowhook.ok("GET", "/v1/default/users/cur-m1/cards", params={"limit": 1}))["nextCursor"]
    position = int.from_bytes(urlsafe_b64decode(issued + "=")[:8], "big")
    binding = Binding("user-cards", "user, eventSource or status", ("default", "cur-m1", None, None))
    assert binding.next_cursor(position) == issued  # the binding the API uses: what follows is accepted as ours
    made_up = binding.next_cursor(2**64 - 1)
    message = await refused(flowhook, "/v1/default/users/cur-m1/cards", {"cursor": made_up})
    assert "not by this API" in message


async def test_the_openapi_document_describes_every_cursor_and_its_400(flowhook) -> None:
    document = (await flowhook.api.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    paged = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            ok = operation["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ok = schemas[ok["$ref"].rsplit("/", 1)[1]] if "$ref" in ok else ok
            cursors = [param for param in operation.get("parameters", []) if param["name"] == "cursor"]
            assert bool(cursors) == ("nextCursor" in ok.get("properties", {})), (path, method)
            if cursors:
                paged.append(path)
                assert "invalid_cursor" in cursors[0]["description"]
                refused_400 = operation["responses"]["400"]
                assert "invalid_cursor" in refused_400["description"]
                assert refused_400["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert sorted(paged) == [
        "/v1/{env}/analytics/events",
        "/v1/{env}/bulk-tasks/{taskId}/skipped",
        "/v1/{env}/customers",
        "/v1/{env}/requests",
        "/v1/{env}/segments/{segmentId}/members",
        "/v1/{env}/triggers",
        "/v1/{env}/triggers/{triggerId}/deliveries",
        "/v1/{env}/triggers/{triggerId}/requests",
        "/v1/{env}/triggers/{triggerId}/requests/replay",
        "/v1/{env}/users/{userId}/cards",
    ]
