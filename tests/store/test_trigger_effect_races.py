"""When a segment or event trigger took effect, against the writes that race it on PostgreSQL.

A segment trigger's entries are split at the instant it took effect (its
flow's first publication, or its creation if later): who entered before is
an existing member, started by a start of the existing members; who entered
after is the trigger's, started by its delivery (store.event_dispatch). Each
entry is to be started once, so the split must hold however the
transactions interleave: an entry written while the split is taken is on one
side of it, committed before the other side looks. And a delivery is
settled under the flow version its mapping applied.

The races take two transactions at once, which only PostgreSQL has (SQLite
has one writer): one is held open while the other runs until it is done or
waits for a lock (tests.support.transactions). The outcome is what counts
(the existing members selected, the deliveries and what became of them, the
invocations), never the waiting itself.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from tests.support.transactions import blocked_by, until_done_or_blocked, while_open

from flows.dispatcher import EventDispatcher
from flows.mapping_runner import MappingRunner
from mapper import Limits
from mapper.pool import SandboxPool
from store import Store, event_dispatch, flows, segments, versioned
from store.bulk_tasks import create_existing_members_task, existing_members, selected_users
from store.clock import utcnow
from store.customers import delete_customer, put_customer
from store.events import CustomEvent, EventsRequest, record_requests
from store.tables import event_deliveries, invocations
from store.triggers import Trigger, insert_trigger

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("database", ["postgresql"], indirect=True)]

PRO = {"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]}
BOUGHT = {"all": [{"event": "checkout", "op": "count_gte", "value": 1}]}
MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId", "variables": "body.properties"}}
#: How the customer `late` enters the segment, in a transaction of its own.
ENTRIES = ["a profile write", "a custom event", "the segment's evaluation"]


@pytest.fixture
def engine(store: Store, database: URL) -> Iterator[Engine]:
    """Connections of our own on the store's (migrated) PostgreSQL database."""
    made = sa.create_engine(database)
    yield made
    made.dispose()


async def segment_entered_by(store: Store, entry: str) -> tuple[str, Callable[[Connection], Any]]:
    """A segment, and a write (its own transaction) by which the customer `late` enters it by `entry`."""
    if entry == "a profile write":
        segment = await evaluated_segment(store, PRO)
        return segment, lambda conn: put_customer(conn, "default", "late", {"plan": "pro"})
    if entry == "a custom event":
        await store.write(lambda conn: put_customer(conn, "default", "late", {"plan": "free"}))
        segment = await evaluated_segment(store, BOUGHT)
        return segment, lambda conn: record_requests(conn, [EventsRequest([event("checkout", "late")], utcnow())])
    await store.write(lambda conn: put_customer(conn, "default", "late", {"plan": "pro"}))
    made = await store.write(lambda conn: segments.insert_segment(conn, "default", "S", PRO))  # not evaluated yet
    return made.id, lambda conn: segments.evaluate_chunk(conn, made.id, made.revision, None, limit=500)


async def evaluated_segment(store: Store, rules: dict[str, Any]) -> str:
    segment = await store.write(lambda conn: segments.insert_segment(conn, "default", "S", rules))
    chunk = await store.write(lambda conn: segments.evaluate_chunk(conn, segment.id, 1, None, limit=500))
    assert chunk.evaluation is not None and chunk.evaluation.complete
    return segment.id


def in_transaction(work: Callable[[Connection], Any]) -> Callable[[Connection], Any]:
    def run(conn: Connection) -> Any:
        with conn.begin():
            return work(conn)

    return run


def segment_trigger(conn: Connection, flow_id: str, segment_id: str, event_name: str = segments.ENTERED) -> Trigger:
    return insert_trigger(
        conn,
        "default",
        flow_id,
        kind="segment",
        mode="live",
        mapping=MAPPING,
        event_name=event_name,
        segment_id=segment_id,
    )


def dispatcher(store: Store) -> EventDispatcher:
    """JMESPath mappings run inline: the pool is never started."""
    return EventDispatcher(store, MappingRunner(SandboxPool(1), Limits()))


async def outcomes(store: Store, trigger_id: str) -> list[tuple[str, str | None]]:
    query = sa.select(event_deliveries.c.status, event_deliveries.c.cause).where(
        event_deliveries.c.trigger_id == trigger_id
    )
    return [tuple(row) for row in await store.read(lambda conn: conn.execute(query).all())]


def event(name: str, user_id: str) -> CustomEvent:
    return CustomEvent("default", name, user_id, {}, {}, utcnow(), None)


def start_existing_members(trigger: Trigger) -> Callable[[Connection], list[str]]:
    """A start of the trigger's existing members (as `POST …/manual-starts` makes it): who it selected."""

    def start(conn: Connection) -> list[str]:
        existing = existing_members(conn, trigger)
        assert existing is not None
        task_input = {"selection": {"existingMembersOf": trigger.id}, "segmentId": existing.segment_id}
        task = create_existing_members_task(conn, "default", trigger.flow_id, existing, task_input)
        return [user for user, _ in selected_users(conn, task.id, 0, 10)]

    return start


@pytest.mark.parametrize("entry", ENTRIES)
async def test_an_entry_in_flight_at_the_publication_is_an_existing_member(
    store: Store, engine: Engine, entry: str
) -> None:
    """The entry took its time before the publication and commits after it: a start of the existing members
    taken meanwhile waits for it and starts it, and the trigger does not."""
    segment_id, enter = await segment_entered_by(store, entry)

    def unpublished_flow_with_trigger(conn: Connection) -> Trigger:
        flow = flows.insert_flow(conn, "default", {"name": "Welcome", "variables": [], "steps": []})
        return segment_trigger(conn, flow.id, segment_id)

    trigger = await store.write(unpublished_flow_with_trigger)

    def publish_then_start(conn: Connection) -> list[str]:
        with conn.begin():
            assert flows.publish(conn, "default", trigger.flow_id) is not None
        with conn.begin():
            return start_existing_members(trigger)(conn)

    assert while_open(engine, enter, publish_then_start) == ["late"]
    await dispatcher(store).drain()
    assert await outcomes(store, trigger.id) == [("skipped", "predates_trigger")]


@pytest.mark.parametrize("entry", ENTRIES)
async def test_an_entry_in_flight_while_a_segment_trigger_is_made_fires_it(
    store: Store, engine: Engine, entry: str
) -> None:
    """The trigger took its time (its flow was published before) and commits after the entry took its own: the
    entry waits for it, so it fires the trigger rather than miss it, and is no existing member."""
    segment_id, enter = await segment_entered_by(store, entry)

    def published_flow(conn: Connection) -> str:
        flow = flows.insert_flow(conn, "default", {"name": "Welcome", "variables": [], "steps": []})
        assert flows.publish(conn, "default", flow.id) is not None
        return flow.id

    flow_id = await store.write(published_flow)
    made: list[Trigger] = []
    while_open(engine, lambda conn: made.append(segment_trigger(conn, flow_id, segment_id)), in_transaction(enter))
    [trigger] = made
    assert await store.write(start_existing_members(trigger)) == []
    await dispatcher(store).drain()
    assert await outcomes(store, trigger.id) == [("accepted", None)]


async def test_an_exit_by_deletion_in_flight_while_a_segment_trigger_is_made_fires_it(
    store: Store, engine: Engine
) -> None:
    """As an entry does: deleting a member's profile exits it from its segments, and a trigger on the exit
    made meanwhile is waited for, so the exit fires it rather than miss it."""
    segment_id = await evaluated_segment(store, PRO)
    await store.write(lambda conn: put_customer(conn, "default", "late", {"plan": "pro"}))

    def published_flow(conn: Connection) -> str:
        flow = flows.insert_flow(conn, "default", {"name": "Goodbye", "variables": [], "steps": []})
        assert flows.publish(conn, "default", flow.id) is not None
        return flow.id

    flow_id = await store.write(published_flow)
    made: list[Trigger] = []

    def exit_trigger(conn: Connection) -> None:
        made.append(segment_trigger(conn, flow_id, segment_id, segments.EXITED))

    while_open(engine, exit_trigger, in_transaction(lambda conn: delete_customer(conn, "default", "late")))
    [trigger] = made
    await dispatcher(store).drain()
    assert await outcomes(store, trigger.id) == [("accepted", None)]


# --- a flow published while a delivery is settled ---


def greeting_flow(conn: Connection, greeting: str) -> str:
    """A published flow whose variable `greeting` defaults to `greeting`."""
    definition = {"name": "Hello", "variables": [{"name": "greeting", "type": "string", "default": greeting}]}
    flow = flows.insert_flow(conn, "default", {**definition, "steps": []})
    assert flows.publish(conn, "default", flow.id) is not None
    return flow.id


def republished(flow_id: str, greeting: str) -> Callable[[Connection], None]:
    """A new version of the flow whose `greeting` defaults to `greeting`, published."""

    def publish(conn: Connection) -> None:
        with conn.begin():
            definition = {"name": "Hello", "variables": [{"name": "greeting", "type": "string", "default": greeting}]}
            assert flows.update_draft(conn, "default", flow_id, {**definition, "steps": []}) is not None
            assert flows.publish(conn, "default", flow_id) is not None

    return publish


async def started_runs(store: Store) -> list[tuple[int, dict[str, Any]]]:
    query = sa.select(invocations.c.flow_version, invocations.c.payload)
    return [(version, payload["variables"]) for version, payload in await store.read(lambda conn: conn.execute(query))]


async def test_a_publication_between_the_check_and_the_acceptance_waits_for_the_settle(
    store: Store, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settling transaction checks the published version its delivery was mapped for, then accepts: a
    publication committing between the two statements would run version 2 with version 1's defaults. It waits
    for the settle instead, which starts version 1 as mapped."""

    def write(conn: Connection) -> str:
        flow_id = greeting_flow(conn, "hi")
        insert_trigger(conn, "default", flow_id, kind="event", mode="live", mapping=MAPPING, event_name="e")
        return flow_id

    flow_id = await store.write(write)
    await store.write(lambda conn: record_requests(conn, [EventsRequest([event("e", "u1")], utcnow())]))
    accept_batch = event_dispatch.accept_batch
    publishing = threading.Thread(target=lambda: run_on(engine, republished(flow_id, "hello")))

    def publication_meanwhile(conn: Connection, requests: list[Any]) -> Any:
        publishing.start()
        until_done_or_blocked(engine, publishing, conn)
        return accept_batch(conn, requests)

    monkeypatch.setattr(event_dispatch, "accept_batch", publication_meanwhile)
    assert await dispatcher(store).drain() == 1
    publishing.join()
    assert await started_runs(store) == [(1, {"greeting": "hi"})]


def run_on(engine: Engine, work: Callable[[Connection], Any]) -> None:
    with engine.connect() as conn:
        work(conn)


async def test_an_event_timed_after_a_publication_took_its_time_waits_for_the_publication(
    store: Store, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publication takes its time, then writes the version: an event recorded in between is the trigger's
    (it is timed after the publication), so settling it waits for the publication rather than find the flow
    unpublished and fail it, `flow_not_published`, which would leave it started by nobody."""

    def write(conn: Connection) -> tuple[str, str]:
        flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": []})
        trigger = insert_trigger(conn, "default", flow.id, kind="event", mode="live", mapping=MAPPING, event_name="e")
        return flow.id, trigger.id

    flow_id, trigger_id = await store.write(write)
    timed, go, publisher = threading.Event(), threading.Event(), {}
    clock = versioned.utcnow

    def paused_after_publication_time() -> Any:
        now = clock()
        if threading.current_thread() is publishing:
            timed.set()
            go.wait()
        return now

    def publish(conn: Connection) -> None:
        with conn.begin():
            publisher["pid"] = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            assert flows.publish(conn, "default", flow_id) is not None

    monkeypatch.setattr(versioned, "utcnow", paused_after_publication_time)
    publishing = threading.Thread(target=lambda: run_on(engine, publish))
    publishing.start()
    timed.wait()
    await store.write(lambda conn: record_requests(conn, [EventsRequest([event("e", "u1")], utcnow())]))
    dispatching = asyncio.create_task(dispatcher(store).drain())
    with engine.connect() as watcher:
        while not dispatching.done() and not blocked_by(watcher, publisher["pid"]):
            await asyncio.sleep(0.01)  # until the settle waits for the publication (or is done without it)
    go.set()
    publishing.join()
    await dispatching
    assert await outcomes(store, trigger_id) == [("accepted", None)]
