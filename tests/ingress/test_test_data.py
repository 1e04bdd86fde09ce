"""`DELETE /v1/{env}/test-data` over HTTP, on SQLite and PostgreSQL: test runs (finished or waiting on a card),
test cards, test events and their deliveries go; live rows of every kind and other environments' stay.

Runs are started through the real doors (webhooks in test and live mode, `/events` and `/events/test`) and the
app's own executor and event dispatcher run them; the tests wait for them to settle by polling the store.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import analytics_events, cards, event_deliveries, flow_instances, invocations

pytestmark = pytest.mark.anyio

OTHER_ENV = "test-data-other"
Rows = dict[str, set[tuple[str, str, str]]]  # kind -> {(environment, source, id)}


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor_poll_seconds": 0.02}


def _rows(conn: Connection) -> Rows:
    """Every row of the kinds test data is made of, with its environment and whether it is test or live (a
    delivery: its event's)."""
    delivery_source = (
        sa.select(event_deliveries.c.environment_id, analytics_events.c.event_source, event_deliveries.c.id)
        .join(analytics_events, analytics_events.c.id == event_deliveries.c.event_id)
    )  # fmt: skip
    queries = {
        "invocations": sa.select(invocations.c.environment_id, invocations.c.mode, invocations.c.id),
        "flowInstances": sa.select(flow_instances.c.environment_id, flow_instances.c.event_source, flow_instances.c.id),
        "cards": sa.select(cards.c.environment_id, cards.c.event_source, cards.c.id),
        "analyticsEvents": sa.select(
            analytics_events.c.environment_id, analytics_events.c.event_source, analytics_events.c.id
        ),
        "eventDeliveries": delivery_source,
    }
    return {kind: {tuple(row) for row in conn.execute(query)} for kind, query in queries.items()}  # type: ignore[misc]


async def rows(flowhook) -> Rows:
    return await flowhook.services.store.read(_rows)


def made_in(found: Rows, env: str = "default") -> Rows:
    return {kind: {row for row in kind_rows if row[:2] == (env, "test")} for kind, kind_rows in found.items()}


def others(found: Rows) -> Rows:
    """All but the default environment's test rows: what a removal there must leave as it was."""
    return {kind: {row for row in kind_rows if row[:2] != ("default", "test")} for kind, kind_rows in found.items()}


async def settled(flowhook) -> None:
    """Wait until nothing is pending or running: every invocation expanded, every delivery settled, every
    instance finished or waiting (on a card, for a day)."""

    def busy(conn: Connection) -> bool:
        pending = sa.select(invocations.c.id).where(invocations.c.status == "pending")
        undelivered = sa.select(event_deliveries.c.id).where(event_deliveries.c.status == "pending")
        running = sa.select(flow_instances.c.id).where(flow_instances.c.status == "active")
        return any(conn.execute(query.limit(1)).first() for query in (pending, undelivered, running))

    for _ in range(1000):
        if not await flowhook.services.store.read(busy):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the executor and the dispatcher did not settle")


async def ok(flowhook, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await flowhook.api.request(method, url, **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def card_wait_flow(flowhook, env: str = "default") -> dict[str, Any]:
    """A published flow sending a published card, then waiting a day for its completion before a second card."""
    template = await ok(
        flowhook, "POST", f"/v1/{env}/card-templates", 201, json={"name": "t", "definition": {"title": "t"}}
    )
    await ok(flowhook, "POST", f"/v1/{env}/card-templates/{template['id']}/publish")
    send = {"type": "send-card", "cardTemplateId": template["id"]}
    wait = {"type": "wait", "id": "answer", "for": {"action": "card-completed", "stepId": "offer"}, "timeout": "P1D"}
    return await flowhook.flow(env=env, publish=True, steps=[{**send, "id": "offer"}, wait, {**send, "id": "next"}])


async def start(flowhook, trigger: dict[str, Any], key: str, users: list[str]) -> None:
    response = await flowhook.post(trigger, orjson.dumps({"targetUserIds": users, "flowInvocationId": key}))
    assert response.status_code == 202, response.text


async def user_cards(flowhook, user: str, **params: Any) -> list[dict[str, Any]]:
    return (await ok(flowhook, "GET", f"/v1/default/users/{user}/cards", params=params))["data"]  # type: ignore[no-any-return]


async def test_removes_test_runs_cards_events_and_deliveries_and_nothing_live(flowhook) -> None:
    await ok(flowhook, "POST", "/v1/environments", 201, json={"id": OTHER_ENV})
    for env in ("default", OTHER_ENV):
        await ok(flowhook, "POST", f"/v1/{env}/test-users", 201, json={"userId": "td-tester"})
    flow = await card_wait_flow(flowhook)
    test_trigger = await flowhook.trigger(flow, mode="test")
    live_trigger = await flowhook.trigger(flow, mode="live")
    # test runs: one waiting on its card (a run in flight), one ignoring a user who is not a test user
    await start(flowhook, test_trigger, "td-test", ["td-tester", "td-stranger"])
    await start(flowhook, live_trigger, "td-live", ["td-tester", "td-customer"])
    # events, live and test, both firing a test-mode event trigger (a live event there starts a test run)
    await flowhook.trigger(flow, type="event", eventName="td-signed-up")
    client = await flowhook.api_client()
    for path in ("/v1/default/events", "/v1/default/events/test"):
        response = await client.post(path, json={"eventName": "td-signed-up", "endUserId": "td-tester"})
        assert response.status_code == 202, response.text
    other_client = await flowhook.api_client(OTHER_ENV)
    sent = await other_client.post(f"/v1/{OTHER_ENV}/events/test", json={"eventName": "e", "endUserId": "td-tester"})
    assert sent.status_code == 202, sent.text
    other_flow = await card_wait_flow(flowhook, OTHER_ENV)
    await start(flowhook, await flowhook.trigger(other_flow, mode="test"), "td-other", ["td-tester"])
    await settled(flowhook)
    before = await rows(flowhook)
    made = made_in(before)
    assert all(made.values()), made  # test data of every kind, to be removed
    assert all(made_in(before, OTHER_ENV)[kind] for kind in ("invocations", "cards", "analyticsEvents"))
    waiting = [
        card for card in await user_cards(flowhook, "td-tester", eventSource="test") if card["stepId"] == "offer"
    ]
    assert waiting  # the test run waits on this card

    answer = await ok(flowhook, "DELETE", "/v1/default/test-data")

    assert answer == {"deleted": {kind: len(found) for kind, found in made.items()}}
    after = await rows(flowhook)
    assert after == others(before)
    assert [card["eventSource"] for card in await user_cards(flowhook, "td-tester")] == ["live"]
    assert (
        await flowhook.api.get(f"/v1/default/action-flows/{flow['id']}/invocations/td-test?mode=test")
    ).status_code == 404
    # the run in flight is gone: its card cannot be acted on, and the executor neither fails nor brings it back
    for card in waiting:
        action = await flowhook.api.post(
            f"/v1/default/cards/{card['cardInstanceId']}/actions", json={"action": "complete"}
        )
        assert action.status_code == 404, action.text
    assert flowhook.services.executor is not None
    await flowhook.services.executor.drain()
    assert await rows(flowhook) == after
    # the live run waiting on its card goes on
    [live_card] = await user_cards(flowhook, "td-customer")
    await ok(flowhook, "POST", f"/v1/default/cards/{live_card['cardInstanceId']}/actions", json={"action": "complete"})

    async def second_card() -> bool:
        return len(await user_cards(flowhook, "td-customer")) == 2

    for _ in range(1000):
        if await second_card():
            break
        await asyncio.sleep(0.02)
    assert await second_card()
    # nothing left: a second removal deletes nothing
    again = await ok(flowhook, "DELETE", "/v1/default/test-data")
    assert again == {"deleted": dict.fromkeys(made, 0)}


async def test_the_admin_token_and_an_existing_environment_are_required(flowhook) -> None:
    anonymous = await flowhook.sender().delete("/v1/default/test-data")
    assert anonymous.status_code == 401
    missing = await flowhook.api.delete("/v1/no-such-env/test-data")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "environment_not_found")


async def test_the_openapi_document_describes_it(flowhook) -> None:
    document = await ok(flowhook, "GET", "/openapi.json")
    operation = document["paths"]["/v1/{env}/test-data"]["delete"]
    assert set(operation["responses"]) >= {"200", "401", "404"}
    assert "parameters" not in operation  # it takes none
    removed = document["components"]["schemas"]["TestDataRemoved"]["properties"]["deleted"]
    assert set(removed["properties"]) == {"invocations", "flowInstances", "cards", "analyticsEvents", "eventDeliveries"}
