"""The event outbox and its dispatcher on real stores: exactly one run per delivery, nothing lost, poison isolated,
a crashed sandbox retried.

Each test runs on a new database (SQLite, and PostgreSQL when
FLOWHOOK_TEST_POSTGRES is set). A second `Store` on the same database
stands for a second process; mappings are JMESPath, run inline, except
where a sandbox worker is to crash: JavaScript in a real pool, whose
worker the test kills mid-request.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from flows.dispatcher import DispatcherConfig, EventDispatcher
from flows.interpreter import RetryPolicy
from flows.mapping_runner import MappingRunner
from mapper import Limits, MappingResult
from mapper.pool import SandboxPool
from mapper.result import error_info
from store import Store, event_dispatch, flows
from store.clock import utcnow
from store.event_deliveries import MAX_HOPS, enqueue, prune
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


def dispatcher(store: Store) -> EventDispatcher:
    """JMESPath mappings run inline: the pool is never started."""
    return EventDispatcher(store, MappingRunner(SandboxPool(1), Limits()))


async def flow_with_trigger(
    store: Store, name: str = "signed-up", *, mode: str = "live", mapping: dict[str, Any] = MAPPING
) -> tuple[str, str]:
    def write(conn: Connection) -> tuple[str, str]:
        flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": []})
        flows.publish(conn, "default", flow.id)
        trigger = insert_trigger(conn, "default", flow.id, kind="event", mode=mode, mapping=mapping, event_name=name)
        return flow.id, trigger.id

    return await store.write(write)


async def send(store: Store, user: str, *, name: str = "signed-up", key: str | None = None, hop: int = 1) -> int:
    """A custom event and its deliveries, written together; how many deliveries."""
    event_id, now = new_id("evt"), utcnow()
    properties = {} if key is None else {"key": key}
    row = {"id": event_id, "environment_id": "default", "event_name": name, "timestamp": now, "end_user_id": user}
    row |= {"flow_id": None, "event_source": "live", "properties": properties, "metadata": {}}

    def write(conn: Connection) -> int:
        conn.execute(sa.insert(analytics_events).values(**row))
        return enqueue(conn, [row], hop, now=now).total()

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
    [delivery] = await store.read(lambda conn: event_dispatch.pending(conn, 10, utcnow()))
    assert delivery.target is not None
    stale = event_dispatch.Settlement(delivery.id, delivery.target.trigger.revision, event_dispatch.SKIPPED, "skipped")
    await store.write(lambda conn: update_trigger(conn, "default", trigger_id, {"mode": "test"}))
    settled = await store.submit(event_dispatch.settle_batches, [stale])
    assert settled == event_dispatch.Settled(0, 0, stale=1)
    assert await dispatcher(store).drain() == 1
    [invocation] = await invocation_rows(store)
    assert invocation["mode"] == "test"


class RepublishingRunner(MappingRunner):
    """Publishes the flow's draft with `greeting` defaulting to `hello` while the first mapping runs: after the
    dispatcher read the delivery (version 1 published), before it settles it."""

    def __init__(self, store: Store, flow_id: str) -> None:
        super().__init__(SandboxPool(1), Limits())
        self._store, self._flow_id, self._published = store, flow_id, False

    async def run_stored(self, target: Any, live: bool, request: dict[str, Any]) -> MappingResult:
        if not self._published:
            self._published = True
            await self._store.write(self._publish)
        return await super().run_stored(target, live, request)

    def _publish(self, conn: Connection) -> None:
        draft = {"name": "f", "variables": [{"name": "greeting", "type": "string", "default": "hello"}], "steps": []}
        flows.update_draft(conn, "default", self._flow_id, draft)
        flows.publish(conn, "default", self._flow_id)


async def test_a_version_published_while_the_mapping_ran_is_mapped_again_under_it(store: Store) -> None:
    """A live run starts the published version, with its variables: a delivery mapped with version 1's
    defaults is not accepted as a run of version 2, but mapped again under it."""

    def write(conn: Connection) -> str:
        draft = {"name": "f", "variables": [{"name": "greeting", "type": "string", "default": "hi"}], "steps": []}
        flow = flows.insert_flow(conn, "default", draft)
        flows.publish(conn, "default", flow.id)
        insert_trigger(conn, "default", flow.id, kind="event", mode="live", mapping=MAPPING, event_name="signed-up")
        return flow.id

    flow_id = await store.write(write)
    await send(store, "u1")
    assert await EventDispatcher(store, RepublishingRunner(store, flow_id)).drain() == 2  # stale, then accepted
    [invocation] = await invocation_rows(store)
    assert (invocation["flow_version"], invocation["payload"]["variables"]) == (2, {"greeting": "hello"})


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


# ---- retries: a crashed sandbox is tried again later, nothing else is ----

LONG = Limits(time_ms=30_000)  # the engine never interrupts these mappings first: the test's kill ends them
LOOP_FOREVER = {"kind": "javascript", "source": "function map(request) { while (true) {} }"}
BUSY_THEN_MAPS = {
    "kind": "javascript",
    "source": "function map(request) {\n"
    "  const end = Date.now() + 500;  // in flight long enough for the test to kill its worker\n"
    "  while (Date.now() < end) {}\n"
    "  return {targetUserIds: [request.body.endUserId]};\n"
    "}",
}
RETRY = RetryPolicy(max_attempts=3, base_seconds=60.0, max_seconds=480.0)


class Clock:
    """The dispatcher's clock, moved on by the test instead of waiting for a retry (made after the events it
    is to find due)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def pool() -> AsyncIterator[SandboxPool]:
    async with SandboxPool(1, limits=LONG) as running:
        yield running


def sandboxed(store: Store, pool: SandboxPool, clock: Clock) -> EventDispatcher:
    return EventDispatcher(store, MappingRunner(pool, LONG), DispatcherConfig(retry=RETRY), clock=clock)


async def crash_a_step(dispatcher: EventDispatcher, pool: SandboxPool) -> int:
    """One step, whose mapping's sandbox worker is killed mid-request (`sandbox_crashed`); how many it settled."""
    step = asyncio.create_task(dispatcher.step())

    async def busy() -> int:
        while not (pids := [worker.pid for worker in pool.workers if worker.in_flight and worker.pid is not None]):
            await asyncio.sleep(0.005)
        return pids[0]

    os.kill(await asyncio.wait_for(busy(), 30), signal.SIGKILL)  # a bound on a hang, not a timing assertion
    return await step


async def test_a_crashed_sandbox_is_retried_after_its_backoff_and_the_retry_starts_the_run(
    store: Store, pool: SandboxPool
) -> None:
    await flow_with_trigger(store, mapping=BUSY_THEN_MAPS)
    await send(store, "u1")
    clock = Clock()
    dispatcher = sandboxed(store, pool, clock)
    assert await crash_a_step(dispatcher, pool) == 1
    [delivery] = await delivery_rows(store)
    assert (delivery["status"], delivery["cause"], delivery["attempts"]) == ("pending", "sandbox_crashed", 1)
    assert delivery["detail"]["error"]["type"] == "SandboxCrashed"
    assert delivery["due_at"] == clock.now + timedelta(minutes=1)
    clock.now += timedelta(seconds=59)
    assert await dispatcher.step() == 0  # not due yet
    clock.now += timedelta(seconds=1)
    assert await dispatcher.step() == 1
    [delivery] = await delivery_rows(store)
    [invocation] = await invocation_rows(store)
    assert (delivery["status"], delivery["cause"], delivery["attempts"]) == ("accepted", None, 2)
    assert (delivery["invocation_id"], invocation["flow_invocation_id"]) == (invocation["id"], delivery["id"])


async def test_a_sandbox_that_crashes_at_every_attempt_fails_the_delivery_after_the_last(
    store: Store, pool: SandboxPool
) -> None:
    await flow_with_trigger(store, mapping=LOOP_FOREVER)
    await send(store, "u1")
    clock = Clock()
    dispatcher = sandboxed(store, pool, clock)
    for attempt, backoff in enumerate((timedelta(minutes=1), timedelta(minutes=2)), 1):
        assert await crash_a_step(dispatcher, pool) == 1
        [delivery] = await delivery_rows(store)
        assert (delivery["status"], delivery["attempts"]) == ("pending", attempt)
        assert delivery["due_at"] == clock.now + backoff  # 1 min, then twice as long
        clock.now = delivery["due_at"]
    assert await crash_a_step(dispatcher, pool) == 1
    [delivery] = await delivery_rows(store)
    assert (delivery["status"], delivery["cause"], delivery["attempts"]) == (
        "failed",
        "sandbox_crashed",
        RETRY.max_attempts,
    )
    assert delivery["detail"]["error"]["type"] == "SandboxCrashed"
    clock.now += timedelta(days=1)
    assert await dispatcher.step() == 0
    assert await invocation_rows(store) == []


@pytest.mark.parametrize(
    ("source", "limits", "error"),
    [
        ("function map(request) { throw new Error('no such field'); }", LONG, "Error"),
        ("function map(request) { while (true) {} }", Limits(time_ms=50), "TimeLimitExceeded"),
    ],
    ids=["throws", "time-limit"],
)
async def test_a_failure_of_the_mapping_itself_is_final_at_once(
    store: Store, source: str, limits: Limits, error: str
) -> None:
    """Another attempt would give the same answer: failed on the first, never due again."""
    await flow_with_trigger(store, mapping={"kind": "javascript", "source": source})
    await send(store, "u1")
    clock = Clock()
    async with SandboxPool(1, limits=limits) as own:
        dispatcher = EventDispatcher(store, MappingRunner(own, limits), DispatcherConfig(retry=RETRY), clock=clock)
        assert await dispatcher.step() == 1
        clock.now += timedelta(days=1)
        assert await dispatcher.step() == 0
    [delivery] = await delivery_rows(store)
    assert (delivery["status"], delivery["cause"], delivery["attempts"]) == ("failed", "mapping_error", 1)
    assert delivery["detail"]["error"]["type"] == error


class CrashingFirst:
    """A runner whose sandbox crashes the first time any of the runners sharing `seen` maps an event."""

    def __init__(self, seen: set[str]) -> None:
        self._seen = seen
        self._runner = MappingRunner(SandboxPool(1), Limits())  # JMESPath, inline

    async def run_stored(self, target: Any, live: bool, request: dict[str, Any]) -> MappingResult:
        event_id = request["body"]["id"]
        if event_id not in self._seen:
            self._seen.add(event_id)
            crashed = error_info(
                "SandboxCrashed", "the sandbox worker crashed (signal SIGKILL); the request was not mapped"
            )
            return MappingResult(ok=False, error=crashed)
        return await self._runner.run_stored(target, live, request)


def crashing_first(store: Store, seen: set[str], clock: Clock) -> EventDispatcher:
    return EventDispatcher(store, CrashingFirst(seen), DispatcherConfig(retry=RETRY), clock=clock)  # type: ignore[arg-type]


async def test_a_retry_not_due_yet_holds_up_no_other_delivery(store: Store) -> None:
    await flow_with_trigger(store)
    await send(store, "first", key="first")
    clock, seen = Clock(), set[str]()
    dispatcher = crashing_first(store, seen, clock)
    assert await dispatcher.step() == 1  # crashed: due again in a minute
    await send(store, "second", key="second")
    clock.now = utcnow()
    seen.add((await delivery_rows(store))[-1]["event_id"])  # the second one maps at once
    assert await dispatcher.step() == 1
    statuses = {row["end_user_id"]: (row["status"], row["attempts"]) for row in await _with_users(store)}
    assert statuses == {"first": ("pending", 1), "second": ("accepted", 1)}
    assert [row["flow_invocation_id"] for row in await invocation_rows(store)] == ["second"]


async def test_a_settlement_of_an_attempt_another_process_recorded_meanwhile_is_dropped(store: Store) -> None:
    """A rival read the delivery too and recorded its attempt first: the attempt is counted once."""
    _, trigger_id = await flow_with_trigger(store)
    await send(store, "u1")
    [read] = await store.read(lambda conn: event_dispatch.pending(conn, 10, utcnow()))
    assert read.target is not None and read.attempts == 0
    assert await crashing_first(store, set(), Clock()).step() == 1  # the rival: crashed, retry scheduled
    late = event_dispatch.Settlement(read.id, read.target.trigger.revision, event_dispatch.FAILED, "mapping_error")
    assert await store.submit(event_dispatch.settle_batches, [late]) == event_dispatch.Settled(0, 0)
    [delivery] = await delivery_rows(store)
    assert (delivery["status"], delivery["cause"], delivery["attempts"]) == ("pending", "sandbox_crashed", 1)


async def test_rival_dispatchers_retrying_crashes_make_one_invocation_per_delivery(store: Store, database: URL) -> None:
    """Each event's first mapping crashes, whichever rival runs it; on PostgreSQL the rivals claim with FOR UPDATE
    SKIP LOCKED and drop settlements of attempts another recorded."""
    await flow_with_trigger(store)
    for index in range(40):
        await send(store, f"r{index}")
    clock, seen = Clock(), set[str]()
    other = await Store.open(database, fsync=False)
    try:
        rivals = [
            crashing_first(store, seen, clock),
            crashing_first(store, seen, clock),
            crashing_first(other, seen, clock),
        ]
        await asyncio.gather(*(rival.drain() for rival in rivals))
        clock.now += timedelta(minutes=1)
        await asyncio.gather(*(rival.drain() for rival in rivals))
    finally:
        await other.close()
    deliveries = await delivery_rows(store)
    assert {row["status"] for row in deliveries} == {"accepted"}
    assert {row["attempts"] for row in deliveries} <= {1, 2}  # a rival's success may have come before the crash's
    invocations_made = await invocation_rows(store)
    assert sorted(row["request_id"] for row in invocations_made) == sorted(row["id"] for row in deliveries)
