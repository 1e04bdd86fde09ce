"""Event triggers at run time: an event fires a trigger, its mapping starts the flow, the executor delivers.

Triggers and events are written straight into the store here (the HTTP
routes are tested with them); the app's dispatcher and executor run in the
background, and `settle` drives both until nothing is left to do.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.event_deliveries import MAX_HOPS, enqueue
from store.event_dispatch import pending
from store.ids import new_id
from store.tables import analytics_events, event_deliveries, flow_instances, invocations, triggers

pytestmark = pytest.mark.anyio

DEFAULT_MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId", "variables": "body.properties"}}
_names = itertools.count()


@pytest.fixture(autouse=True)
async def quiet_triggers(flowhook) -> AsyncIterator[None]:
    """Disable every event trigger after each test: the app is shared, and flow events fire them all."""
    yield
    disable = sa.update(triggers).where(triggers.c.type == "event").values(mode="disabled")
    await flowhook.services.store.write(lambda conn: conn.execute(disable))
    await settle(flowhook)


def event_name() -> str:
    """A name no other test's triggers listen for (the app is shared by the module)."""
    return f"custom-{next(_names)}"


async def event_trigger(
    flowhook: Any, flow: dict[str, Any], name: str, *, mode: str = "live", mapping: dict[str, Any] | None = None
) -> str:
    now = utcnow()
    trigger_id = new_id("trg")
    row = {
        "id": trigger_id,
        "environment_id": "default",
        "flow_id": flow["id"],
        "type": "event",
        "hook_id": None,
        "mode": mode,
        "mapping": mapping or DEFAULT_MAPPING,
        "verification": None,
        "allowed_ips": [],
        "capture_armed": False,
        "revision": 1,
        "created_at": now,
        "updated_at": now,
        "event_name": name,
    }
    await flowhook.services.store.write(lambda conn: conn.execute(sa.insert(triggers).values(**row)))
    return trigger_id


async def send_event(
    flowhook: Any, name: str, user: str | None, properties: dict[str, Any] | None = None, *, source: str = "live"
) -> str:
    """Store a custom event as `POST /v1/{env}/events` does, with its deliveries; its id."""
    event_id = new_id("evt")
    now = utcnow()
    row = {
        "id": event_id,
        "environment_id": "default",
        "event_name": name,
        "timestamp": now,
        "end_user_id": user,
        "flow_id": None,
        "event_source": source,
        "properties": properties or {},
        "metadata": {},
    }

    def write(conn: Connection) -> None:
        conn.execute(sa.insert(analytics_events).values(**row))
        enqueue(conn, [row], 1, now=now)

    await flowhook.services.store.write(write)
    flowhook.services.events_arrived()
    return event_id


async def settle(flowhook: Any) -> None:
    """Dispatch events and run flows until neither has anything left. The app's background loops run too and
    may hold work the drains cannot see (a delivery being mapped, an invocation being run): nothing is left
    only when no delivery or invocation is pending and no flow instance is active."""
    services = flowhook.services
    for _ in range(500):
        dispatched = await services.dispatcher.drain()
        progress = await services.executor.drain()
        if dispatched or progress.worked:
            continue
        if not await services.store.read(outstanding):
            return
        await asyncio.sleep(0.01)  # a background loop holds it: let it finish
    raise AssertionError("events kept coming")


def outstanding(conn: Connection) -> bool:
    return bool(
        pending(conn, 1, utcnow())
        or conn.execute(sa.select(invocations.c.id).where(invocations.c.status == "pending").limit(1)).first()
        or conn.execute(sa.select(flow_instances.c.id).where(flow_instances.c.status == "active").limit(1)).first()
    )


async def deliveries(flowhook: Any, trigger_id: str) -> list[dict[str, Any]]:
    def read(conn: Connection) -> list[dict[str, Any]]:
        query = sa.select(event_deliveries).where(event_deliveries.c.trigger_id == trigger_id)
        return [dict(row._mapping) for row in conn.execute(query.order_by(event_deliveries.c.seq))]

    return await flowhook.services.store.read(read)


async def runs(flowhook: Any, flow: dict[str, Any]) -> list[dict[str, Any]]:
    def read(conn: Connection) -> list[dict[str, Any]]:
        query = sa.select(invocations).where(invocations.c.flow_id == flow["id"]).order_by(invocations.c.seq)
        return [dict(row._mapping) for row in conn.execute(query)]

    return await flowhook.services.store.read(read)


async def card_flow(flowhook: Any, *, publish: bool = True, title: str = "Hi {{firstName}}") -> dict[str, Any]:
    template = await flowhook.template({"title": title}, publish=publish)
    steps = [{"type": "send-card", "id": "s", "cardTemplateId": template["id"]}]
    variables = [{"name": "firstName", "type": "string", "default": "there"}]
    return await flowhook.flow(steps, publish=publish, variables=variables)  # type: ignore[no-any-return]


async def test_the_default_mapping_starts_the_flow_for_the_event_user_with_its_properties(flowhook) -> None:
    flow = await card_flow(flowhook)
    name = event_name()
    trigger_id = await event_trigger(flowhook, flow, name)
    event_id = await send_event(flowhook, name, "evt-ann", {"firstName": "Ann"})
    await settle(flowhook)
    [card] = await flowhook.cards("evt-ann")
    assert (card["definition"], card["eventSource"]) == ({"title": "Hi Ann"}, "live")
    [delivery] = await deliveries(flowhook, trigger_id)
    [run] = await runs(flowhook, flow)
    assert (delivery["status"], delivery["cause"], delivery["event_id"]) == ("accepted", None, event_id)
    assert (delivery["invocation_id"], delivery["flow_invocation_id"]) == (run["id"], delivery["id"])
    assert delivery["detail"]["output"] == {"targetUserIds": ["evt-ann"], "variables": {"firstName": "Ann"}}
    assert (run["trigger_id"], run["request_id"], run["mode"], run["hop"]) == (trigger_id, delivery["id"], "live", 1)


async def test_a_javascript_mapping_sees_the_event_as_the_request_body(flowhook) -> None:
    flow = await card_flow(flowhook)
    name = event_name()
    source = """
    function map(request) {
      const { body } = request;
      console.log(request.method, request.path, request.contentType, body.eventName, body.eventSource);
      return {
        targetUserIds: [body.properties.friend],
        variables: { firstName: body.endUserId.toUpperCase() },
        flowInvocationId: `welcome-${body.id}`,
      };
    }
    """
    trigger_id = await event_trigger(flowhook, flow, name, mapping={"kind": "javascript", "source": source})
    event_id = await send_event(flowhook, name, "evt-bob", {"friend": "evt-cat"})
    await settle(flowhook)
    assert [card["definition"] for card in await flowhook.cards("evt-cat")] == [{"title": "Hi EVT-BOB"}]
    [delivery] = await deliveries(flowhook, trigger_id)
    assert (delivery["status"], delivery["flow_invocation_id"]) == ("accepted", f"welcome-{event_id}")
    [line] = delivery["detail"]["logs"]
    assert line["message"] == f"POST /v1/default/events application/json {name} live"


@pytest.mark.parametrize(
    "mapping",
    [
        {"kind": "javascript", "source": "function map(request) { return {targetUserIds: request.body.endUserId}; }"},
        {"kind": "jmespath", "expression": "{targetUserIds: body.endUserId}"},
    ],
    ids=["javascript", "jmespath-expression"],
)
async def test_a_mapping_may_set_target_user_ids_to_a_string(flowhook, mapping: dict[str, Any]) -> None:
    """The seed: "at the very least a targetUserIds property must be set to a string"."""
    flow = await card_flow(flowhook)
    name = event_name()
    trigger_id = await event_trigger(flowhook, flow, name, mapping=mapping)
    user = f"evt-str-{mapping['kind']}"
    await send_event(flowhook, name, user)
    await settle(flowhook)
    [delivery] = await deliveries(flowhook, trigger_id)
    assert (delivery["status"], delivery["cause"]) == ("accepted", None)
    assert delivery["detail"]["output"] == {"targetUserIds": [user], "variables": {"firstName": "there"}}
    assert [card["definition"] for card in await flowhook.cards(user)] == [{"title": "Hi there"}]


async def test_refused_deliveries_record_their_cause_and_leave_the_others_alone(flowhook) -> None:
    name = event_name()
    throws = {"kind": "javascript", "source": "function map(request) { throw new TypeError('no user'); }"}
    no_users = {"kind": "jmespath", "fields": {"variables": "body.properties"}}
    skips = {"kind": "javascript", "source": "function map(request) { return null; }"}
    refusing = {}
    for cause, mapping in (("mapping_error", throws), ("validation_error", no_users), ("skipped", skips)):
        refusing[cause] = await event_trigger(flowhook, await card_flow(flowhook), name, mapping=mapping)
    good_flow = await card_flow(flowhook)
    good = await event_trigger(flowhook, good_flow, name)
    await send_event(flowhook, name, "evt-dan", {"firstName": "Dan"})
    await settle(flowhook)
    assert [card["definition"] for card in await flowhook.cards("evt-dan")] == [{"title": "Hi Dan"}]
    assert [delivery["status"] for delivery in await deliveries(flowhook, good)] == ["accepted"]
    found = {cause: (await deliveries(flowhook, trigger_id))[0] for cause, trigger_id in refusing.items()}
    assert {cause: (d["status"], d["cause"]) for cause, d in found.items()} == {
        "mapping_error": ("failed", "mapping_error"),
        "validation_error": ("failed", "validation_error"),
        "skipped": ("skipped", "skipped"),
    }
    assert found["mapping_error"]["detail"]["error"]["message"] == "no user"
    [problem] = found["validation_error"]["detail"]["validationErrors"]
    assert "targetUserIds" in problem["message"]
    assert all(d["invocation_id"] is None for d in found.values())


async def test_a_run_is_live_only_when_trigger_and_event_are_live(flowhook) -> None:
    await flowhook.test_user("evt-tester")
    live_flow, test_flow = await card_flow(flowhook), await card_flow(flowhook)
    name = event_name()
    await event_trigger(flowhook, live_flow, name, mode="live")
    await event_trigger(flowhook, test_flow, name, mode="test")
    await send_event(flowhook, name, "evt-tester", {"firstName": "T"}, source="test")
    await send_event(flowhook, name, "evt-stranger", {"firstName": "S"}, source="live")
    await settle(flowhook)
    modes = {
        flow_id: [(run["mode"], run["payload"]["targetUserIds"]) for run in await runs(flowhook, flow)]
        for flow_id, flow in (("live", live_flow), ("test", test_flow))
    }
    assert modes == {
        "live": [("test", ["evt-tester"]), ("live", ["evt-stranger"])],
        "test": [("test", ["evt-tester"]), ("test", ["evt-stranger"])],
    }
    # a test run reaches test users only; the stranger's one card is the live trigger's live run
    assert [card["eventSource"] for card in await flowhook.cards("evt-tester")] == ["test", "test"]
    [stranger] = await flowhook.cards("evt-stranger")
    assert (stranger["eventSource"], stranger["flowConfigId"]) == ("live", live_flow["id"])


async def test_a_live_event_for_an_unpublished_flow_fails_with_flow_not_published(flowhook) -> None:
    flow = await card_flow(flowhook, publish=False)
    name = event_name()
    trigger_id = await event_trigger(flowhook, flow, name, mode="live")
    await send_event(flowhook, name, "evt-eve")
    await settle(flowhook)
    [delivery] = await deliveries(flowhook, trigger_id)
    assert (delivery["status"], delivery["cause"], delivery["invocation_id"]) == ("failed", "flow_not_published", None)
    assert await runs(flowhook, flow) == []


async def test_a_flows_own_events_fire_other_flows_triggers_but_never_its_own(flowhook) -> None:
    template = await flowhook.template({"title": "t"}, publish=True)
    sender = await flowhook.flow([{"type": "send-card", "id": "s", "cardTemplateId": template["id"]}], publish=True)
    follower = await flowhook.flow([], publish=True)
    own = await event_trigger(flowhook, sender, "card-published")  # the sender's own card: never fires it
    other = await event_trigger(flowhook, follower, "action-flow-started")  # the sender's start: fires
    webhook = await flowhook.trigger(sender, "live")
    await flowhook.start(webhook, ["evt-fay"])
    await settle(flowhook)
    assert await deliveries(flowhook, own) == []
    [delivery] = await deliveries(flowhook, other)
    assert delivery["status"] == "accepted"
    assert [run["hop"] for run in await runs(flowhook, sender)] == [None]
    [follow] = await runs(flowhook, follower)
    assert (follow["hop"], follow["payload"]["targetUserIds"]) == (1, ["evt-fay"])
    assert len(await flowhook.events(flowId=follower["id"], eventName="action-flow-completed")) == 1


async def test_a_cycle_across_two_flows_stops_at_the_hop_limit(flowhook) -> None:
    first = await flowhook.flow([], publish=True)
    second = await flowhook.flow([], publish=True)
    await event_trigger(flowhook, first, "action-flow-started")
    await event_trigger(flowhook, second, "action-flow-started")
    await flowhook.start(await flowhook.trigger(first, "live"), ["evt-gil"])
    await settle(flowhook)
    hops = sorted(
        (run["hop"] or 0, run["flow_id"]) for run in [*await runs(flowhook, first), *await runs(flowhook, second)]
    )
    assert hops == [(hop, (first if hop % 2 == 0 else second)["id"]) for hop in range(MAX_HOPS + 1)]


async def test_a_card_action_fires_event_triggers_of_other_flows(flowhook) -> None:
    template = await flowhook.template({"title": "t"}, publish=True)
    sender = await flowhook.flow([{"type": "send-card", "id": "s", "cardTemplateId": template["id"]}], publish=True)
    follower = await flowhook.flow([], publish=True)
    own = await event_trigger(flowhook, sender, "card-completed")
    other = await event_trigger(flowhook, follower, "card-completed")
    await flowhook.start(await flowhook.trigger(sender, "live"), ["evt-hal"])
    await settle(flowhook)
    [card] = await flowhook.cards("evt-hal")
    await flowhook.act(card, "complete")
    await settle(flowhook)
    assert await deliveries(flowhook, own) == []
    assert [delivery["status"] for delivery in await deliveries(flowhook, other)] == ["accepted"]
    [follow] = await runs(flowhook, follower)
    assert (follow["hop"], follow["payload"]["targetUserIds"]) == (1, ["evt-hal"])
