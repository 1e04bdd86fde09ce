"""The event outbox and its dispatcher on real stores: exactly one run per delivery, nothing lost, poison isolated.

Each test runs on a new database (SQLite, and PostgreSQL when
FLOWHOOK_TEST_POSTGRES is set). A second `Store` on the same database
stands for a second process; mappings are JMESPath, run inline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from flows.dispatcher import EventDispatcher
from ingress.mapping_runner import MappingRunner
from mapper import Limits
from mapper.pool import SandboxPool
from store import Store, event_dispatch, flows
from store.clock import utcnow
from store.event_deliveries import MAX_HOPS, FiredEvent, enqueue, prune
from store.ids import new_id
from store.invocations import Acceptance, AcceptRequest
from store.tables import analytics_events, event_deliveries, invocations
from store.triggers import delete_trigger, insert_trigger, update_trigger

pytestmark = pytest.mark.anyio

MAPPING = {
    "kind": "jmespath",
    "fields": {
        "targetUserIds": "body.endUserId",
        "variables": "body.properties",
        "flowInvocationId": "body.properties.key",
    },
}


@pytest.fixture
async def store(database: URL) -> AsyncIterator[Store]:
    opened = await Store.open(database, fsync=False)
    yield opened
    await opened.close()


def dispatcher(store: Store) -> EventDispatcher:
    """JMESPath mappings run inline: the pool is never started."""
    return EventDispatcher(store, MappingRunner(SandboxPool(1), Limits()))


async def flow_with_trigger(store: Store, name: str = "signed-up", *, mode: str = "live") -> tuple[str, str]:
    def write(conn: Connection) -> tuple[str, str]:
        flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": []})
        flows.publish(conn, "default", flow.id)
        trigger = insert_trigger(conn, "default", flow.id, mode=mode, mapping=MAPPING, event_name=name)
        return flow.id, trigger.id

    return await store.write(write)


async def send(store: Store, user: str, *, name: str = "signed-up", key: str | None = None, hop: int = 1) -> int:
    """A custom event and its deliveries, written together; how many deliveries."""
    event_id, now = new_id("evt"), utcnow()
    properties = {} if key is None else {"key": key}
    row = {"id": event_id, "environment_id": "default", "event_name": name, "timestamp": now, "end_user_id": user}
    row |= {"event_source": "live", "properties": properties, "metadata": {}}

    def write(conn: Connection) -> int:
        conn.execute(sa.insert(analytics_events).values(**row))
        return enqueue(conn, [FiredEvent(event_id, "default", name, None)], hop=hop, now=now)

    return await store.write(write)


async def delivery_rows(store: Store) -> list[dict[str, Any]]:
    def read(conn: Connection) -> list[dict[str, Any]]:
        query = sa.select(event_deliveries).order_by(event_deliveries.c.seq)
        return [dict(row._mapping) for row in conn.execute(query)]

    return await store.read(read)


async def invocation_rows(store: Store) -> list[dict[str, Any]]:
    def read(conn: Connection) -> list[dict[str, Any]]:
        return [dict(row._mapping) for row in conn.execute(sa.select(invocations).order_by(invocations.c.seq))]

    return await store.read(read)


async def test_an_event_fires_only_enabled_triggers_of_its_name_and_nothing_past_the_hop_limit(store: Store) -> None:
    await flow_with_trigger(store)
    await flow_with_trigger(store, mode="disabled")
    await flow_with_trigger(store, "other-event")
    assert await send(store, "u1") == 1
    assert await send(store, "u2", hop=MAX_HOPS) == 1
    assert await send(store, "u3", hop=MAX_HOPS + 1) == 0
    assert [row["hop"] for row in await delivery_rows(store)] == [1, MAX_HOPS]


async def test_dispatching_again_starts_nothing_more(store: Store) -> None:
    await flow_with_trigger(store)
    for user in ("u1", "u2", "u3"):
        await send(store, user)
    first = dispatcher(store)
    assert await first.drain() == 3
    assert await first.drain() == 0
    assert await dispatcher(store).drain() == 0
    assert [row["status"] for row in await delivery_rows(store)] == ["accepted"] * 3
    assert len(await invocation_rows(store)) == 3


async def test_a_delivery_settled_twice_repeats_its_first_invocation(store: Store) -> None:
    """Past the pending re-check (as if two processes raced it), the invocation key derived from the delivery
    makes the second settle a duplicate of the first."""
    await flow_with_trigger(store)
    await send(store, "u1")
    await dispatcher(store).drain()
    await store.write(lambda conn: conn.execute(sa.update(event_deliveries).values(status="pending")))
    await dispatcher(store).drain()
    [delivery] = await delivery_rows(store)
    [invocation] = await invocation_rows(store)
    assert (delivery["status"], delivery["invocation_id"]) == ("duplicate", invocation["id"])
    assert invocation["flow_invocation_id"] == delivery["id"]


async def test_rival_dispatchers_make_one_invocation_per_delivery(store: Store, database: URL) -> None:
    """Two dispatchers here and one on another store of the same database, as a second process would run.

    On PostgreSQL the rivals re-check with FOR UPDATE SKIP LOCKED; on SQLite the single writer takes turns.
    """
    await flow_with_trigger(store)
    await flow_with_trigger(store)
    for index in range(60):
        await send(store, f"r{index}")
    other = await Store.open(database, fsync=False)
    try:
        settled = await asyncio.gather(dispatcher(store).drain(), dispatcher(store).drain(), dispatcher(other).drain())
    finally:
        await other.close()
    assert sum(settled) == 120
    deliveries = await delivery_rows(store)
    assert {row["status"] for row in deliveries} == {"accepted"}
    invocations_made = await invocation_rows(store)
    assert sorted(row["request_id"] for row in invocations_made) == sorted(row["id"] for row in deliveries)


async def test_a_delivery_left_by_a_crash_is_dispatched_by_the_next_process(store: Store, database: URL) -> None:
    flow_id, trigger_id = await flow_with_trigger(store)
    dying = await Store.open(database, fsync=False)
    try:
        await send(dying, "u1")
    finally:
        await dying.close()  # the process that took the event is gone before any dispatcher saw it
    assert await dispatcher(store).drain() == 1
    [invocation] = await invocation_rows(store)
    assert (invocation["flow_id"], invocation["trigger_id"], invocation["hop"]) == (flow_id, trigger_id, 1)


async def test_a_settle_that_dies_before_commit_leaves_every_delivery_pending(store: Store, monkeypatch) -> None:
    await flow_with_trigger(store)
    await send(store, "u1")
    await send(store, "u2")

    def lost_connection(conn: Connection, requests: list[AcceptRequest]) -> list[Acceptance]:
        raise sa.exc.OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

    with monkeypatch.context() as patched:
        patched.setattr(event_dispatch, "accept_batch", lost_connection)
        with pytest.raises(sa.exc.OperationalError):
            await dispatcher(store).step()
    assert [row["status"] for row in await delivery_rows(store)] == ["pending", "pending"]
    assert await dispatcher(store).drain() == 2
    assert len(await invocation_rows(store)) == 2


async def test_a_delivery_that_fails_whenever_it_is_settled_is_set_aside_and_the_rest_go_on(
    store: Store, monkeypatch
) -> None:
    await flow_with_trigger(store)
    for key in ("before", "poison", "after"):
        await send(store, key, key=key)
    accept = event_dispatch.accept_batch

    def poisoned(conn: Connection, requests: list[AcceptRequest]) -> list[Acceptance]:
        if any(request.flow_invocation_id == "poison" for request in requests):
            raise ValueError("cannot store this one")
        return accept(conn, requests)

    monkeypatch.setattr(event_dispatch, "accept_batch", poisoned)
    assert await dispatcher(store).drain() == 3
    found = {row["end_user_id"]: row for row in await _with_users(store)}
    assert (found["before"]["status"], found["after"]["status"]) == ("accepted", "accepted")
    assert (found["poison"]["status"], found["poison"]["cause"]) == ("failed", "internal_error")
    assert "cannot store this one" in found["poison"]["detail"]["error"]
    assert sorted(row["flow_invocation_id"] for row in await invocation_rows(store)) == ["after", "before"]


async def _with_users(store: Store) -> list[dict[str, Any]]:
    def read(conn: Connection) -> list[dict[str, Any]]:
        query = sa.select(event_deliveries, analytics_events.c.end_user_id).join(
            analytics_events, analytics_events.c.id == event_deliveries.c.event_id
        )
        return [dict(row._mapping) for row in conn.execute(query)]

    return await store.read(read)


async def test_a_trigger_disabled_before_dispatch_skips_its_deliveries(store: Store) -> None:
    _, trigger_id = await flow_with_trigger(store)
    await send(store, "u1")
    await store.write(lambda conn: update_trigger(conn, "default", trigger_id, {"mode": "disabled"}))
    assert await dispatcher(store).drain() == 1
    [delivery] = await delivery_rows(store)
    assert (delivery["status"], delivery["cause"], delivery["invocation_id"]) == ("skipped", "trigger_disabled", None)
    assert await invocation_rows(store) == []


async def test_a_trigger_deleted_before_dispatch_takes_its_deliveries_with_it(store: Store) -> None:
    _, trigger_id = await flow_with_trigger(store)
    await send(store, "u1")
    await store.write(lambda conn: delete_trigger(conn, "default", trigger_id))
    assert await dispatcher(store).drain() == 0
    assert (await delivery_rows(store), await invocation_rows(store)) == ([], [])


async def test_a_trigger_changed_while_its_mapping_ran_is_mapped_again_under_the_change(store: Store) -> None:
    """Settling checks the trigger's revision: a delivery mapped under an older one stays pending."""
    _, trigger_id = await flow_with_trigger(store)
    await send(store, "u1")
    [delivery] = await store.read(lambda conn: event_dispatch.pending(conn, 10))
    assert delivery.target is not None
    stale = event_dispatch.Settlement(delivery.id, delivery.target.trigger.revision, event_dispatch.SKIPPED, "skipped")
    await store.write(lambda conn: update_trigger(conn, "default", trigger_id, {"mode": "test"}))
    settled = await store.submit(event_dispatch.settle_batches, [stale])
    assert settled == event_dispatch.Settled(0, 0)
    assert await dispatcher(store).drain() == 1
    [invocation] = await invocation_rows(store)
    assert invocation["mode"] == "test"


async def test_pruning_keeps_the_newest_settled_deliveries_of_each_trigger_and_every_pending_one(store: Store) -> None:
    _, first = await flow_with_trigger(store)
    for user in ("old-1", "old-2", "old-3"):
        await send(store, user, name="signed-up")
    await dispatcher(store).drain()
    _, second = await flow_with_trigger(store, "later")
    for user in ("new-1", "new-2"):
        await send(store, user)  # pending, older than nothing of `second` yet: never pruned
        await send(store, user, name="later")
    assert await store.write(lambda conn: prune(conn, [first, second], 1, 10)) == 2  # old-1 and old-2
    kept = {(row["end_user_id"], row["trigger_id"], row["status"]) for row in await _with_users(store)}
    assert kept == {
        ("old-3", first, "accepted"),
        ("new-1", first, "pending"),
        ("new-2", first, "pending"),
        ("new-1", second, "pending"),
        ("new-2", second, "pending"),
    }
    assert await store.write(lambda conn: prune(conn, [first, second], 1, 10)) == 0
