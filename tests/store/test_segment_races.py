"""Segments against the writes that race them: a writer in flight, a chunk in flight, a chunk that always fails.

The races take two transactions at once, which only PostgreSQL has (SQLite
has one writer): one transaction is held open while another runs in a
thread until it finishes or waits for a lock, then the first commits
(tests.support.transactions). The outcome is what counts (members and
segment events), never the waiting itself. Runs on a new database each (SQLite, and PostgreSQL when
FLOWHOOK_TEST_POSTGRES is set); the races run on PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from tests.support.transactions import blocked_by, while_open

from flows.segment_evaluation import SegmentEvaluator, SegmentEvaluatorConfig
from store import Store, segments
from store.clock import utcnow
from store.customers import delete_customer, put_customer
from store.events import CustomEvent, EventsRequest, record_requests
from store.tables import analytics_events, segment_members
from store.tables import segments as segment_rows

pytestmark = pytest.mark.anyio
PRO = {"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]}
GOLD = {"all": [{"attribute": "tier", "op": "eq", "value": "gold"}]}
BOUGHT = {"all": [{"event": "checkout", "op": "count_gte", "value": 1}]}


#: For a race of two transactions: SQLite has one writer, so they cannot interleave there.
POSTGRESQL_ONLY = pytest.mark.parametrize("database", ["postgresql"], indirect=True)


@pytest.fixture
def engine(store: Store, database: URL) -> Iterator[Engine]:
    """Connections of our own on the store's (migrated) PostgreSQL database (tests marked POSTGRESQL_ONLY)."""
    assert database.get_backend_name() == "postgresql"
    made = sa.create_engine(database)
    yield made
    made.dispose()


def evaluated(conn: Connection, segment: segments.Segment) -> None:
    """Each chunk of the segment's evaluation in a transaction of its own, as the request evaluates it."""
    evaluation = segment.evaluation
    while not evaluation.complete:
        with conn.begin():
            chunk = segments.evaluate_chunk(conn, segment.id, segment.revision, evaluation.after, limit=2)
        assert chunk.evaluation is not None
        evaluation = chunk.evaluation


def edited(segment_id: str, rules: dict[str, Any]) -> Callable[[Connection], None]:
    def edit(conn: Connection) -> None:
        with conn.begin():
            segment = segments.update_segment(conn, "default", segment_id, "S", rules)
        assert segment is not None
        evaluated(conn, segment)

    return edit


def created(rules: dict[str, Any]) -> Callable[[Connection], str]:
    def create(conn: Connection) -> str:
        with conn.begin():
            segment = segments.insert_segment(conn, "default", "S", rules)
        evaluated(conn, segment)
        return segment.id

    return create


async def new_segment(store: Store, rules: dict[str, Any]) -> str:
    segment = await store.write(lambda conn: segments.insert_segment(conn, "default", "S", rules))
    chunk = await store.write(lambda conn: segments.evaluate_chunk(conn, segment.id, 1, None, limit=500))
    assert chunk.evaluation is not None and chunk.evaluation.complete
    return segment.id


async def segment_events(store: Store, user_id: str) -> list[tuple[str, str]]:
    query = (
        sa.select(analytics_events.c.event_name, analytics_events.c.properties)
        .where(analytics_events.c.end_user_id == user_id, analytics_events.c.event_name.like("segment-%"))
        .order_by(analytics_events.c.seq)
    )
    rows = await store.read(lambda conn: conn.execute(query).all())
    return [(name, properties["segmentId"]) for name, properties in rows]


async def members_of(store: Store, user_id: str) -> list[str]:
    return (await store.read(lambda conn: segments.memberships(conn, "default", [user_id])))[user_id]


def checkout(user_id: str) -> Callable[[Connection], None]:
    event = CustomEvent("default", "checkout", user_id, {}, {}, utcnow(), None)
    return lambda conn: record_requests(conn, [EventsRequest([event], utcnow())])


# --- writers in flight while a segment changes ---


@POSTGRESQL_ONLY
async def test_a_profile_written_during_an_edit_is_evaluated_by_the_new_rules(store: Store, engine: Engine) -> None:
    segment_id = await new_segment(store, PRO)
    while_open(engine, lambda conn: put_customer(conn, "default", "newbie", {"tier": "gold"}), edited(segment_id, GOLD))
    assert await members_of(store, "newbie") == [segment_id]
    assert await segment_events(store, "newbie") == [("segment-entered", segment_id)]


@POSTGRESQL_ONLY
async def test_a_profile_written_while_a_segment_is_created_is_evaluated_against_it(
    store: Store, engine: Engine
) -> None:
    segment_id = while_open(engine, lambda conn: put_customer(conn, "default", "newbie", {"plan": "pro"}), created(PRO))
    assert await members_of(store, "newbie") == [segment_id]
    assert await segment_events(store, "newbie") == [("segment-entered", segment_id)]


@POSTGRESQL_ONLY
async def test_an_event_stored_during_an_edit_that_starts_counting_it_counts(store: Store, engine: Engine) -> None:
    """The segment did not count `checkout` when the event was stored: the writer must hold it all the same."""
    segment_id = await new_segment(store, PRO)
    await store.write(lambda conn: put_customer(conn, "default", "bob", {"plan": "free"}))
    while_open(engine, checkout("bob"), edited(segment_id, BOUGHT))
    assert await members_of(store, "bob") == [segment_id]
    assert await segment_events(store, "bob") == [("segment-entered", segment_id)]


@POSTGRESQL_ONLY
async def test_an_event_stored_while_a_segment_counting_it_is_created_counts(store: Store, engine: Engine) -> None:
    await store.write(lambda conn: put_customer(conn, "default", "bob", {"plan": "free"}))
    segment_id = while_open(engine, checkout("bob"), created(BOUGHT))
    assert await members_of(store, "bob") == [segment_id]
    assert await segment_events(store, "bob") == [("segment-entered", segment_id)]


# --- a segment deleted while its members are being written ---


async def orphans(store: Store, segment_id: str) -> list[str]:
    query = sa.select(segment_members.c.user_id).where(segment_members.c.segment_id == segment_id)
    return list(await store.read(lambda conn: conn.execute(query).scalars().all()))


def deleted(segment_id: str) -> Callable[[Connection], bool]:
    def delete(conn: Connection) -> bool:
        with conn.begin():
            return segments.delete_segment(conn, "default", segment_id)

    return delete


@POSTGRESQL_ONLY
async def test_a_segment_deleted_during_a_chunk_keeps_no_members(store: Store, engine: Engine) -> None:
    await store.write(lambda conn: put_customer(conn, "default", "u1", {"plan": "pro"}))
    segment = await store.write(lambda conn: segments.insert_segment(conn, "default", "S", PRO))

    def chunk(conn: Connection) -> None:
        assert segments.evaluate_chunk(conn, segment.id, 1, None, limit=500).changes.entered == 1

    assert while_open(engine, chunk, deleted(segment.id))
    assert await orphans(store, segment.id) == []
    assert await store.write(lambda conn: delete_customer(conn, "default", "u1")) == segments.Changes()


@POSTGRESQL_ONLY
async def test_a_segment_deleted_during_a_profile_write_keeps_no_members(store: Store, engine: Engine) -> None:
    segment_id = await new_segment(store, PRO)
    assert while_open(engine, lambda conn: put_customer(conn, "default", "u1", {"plan": "pro"}), deleted(segment_id))
    assert await orphans(store, segment_id) == []


async def test_a_customer_with_a_member_row_of_a_deleted_segment_can_be_deleted(store: Store) -> None:
    """Such rows were left by a segment deleted during a chunk, before the delete waited for the chunk."""
    segment_id = await new_segment(store, PRO)
    kept = await new_segment(store, PRO)
    await store.write(lambda conn: put_customer(conn, "default", "u1", {"plan": "pro"}))
    statement = sa.delete(segment_rows).where(segment_rows.c.id == segment_id)
    await store.write(lambda conn: conn.execute(statement))  # the orphan's segment, gone without its members
    changes = await store.write(lambda conn: delete_customer(conn, "default", "u1"))
    assert changes == segments.Changes(exited=1)
    assert await orphans(store, segment_id) == []
    assert await segment_events(store, "u1") == [
        ("segment-entered", segment_id),
        ("segment-entered", kept),
        ("segment-exited", kept),
    ]


# --- a chunk that always fails ---


async def lease(store: Store, segment_id: str) -> datetime:
    query = sa.select(segment_rows.c.evaluation_lease).where(segment_rows.c.id == segment_id)
    found: datetime = await store.read(lambda conn: conn.execute(query).scalar_one())
    return found


async def lease_ran_out(store: Store, segment_id: str, ago: timedelta) -> None:
    statement = sa.update(segment_rows).where(segment_rows.c.id == segment_id).values(evaluation_lease=utcnow() - ago)
    await store.write(lambda conn: conn.execute(statement))


async def test_a_failing_chunk_is_put_off_and_the_other_evaluations_go_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.write(lambda conn: put_customer(conn, "default", "u1", {"plan": "pro"}))
    bad = await store.write(lambda conn: segments.insert_segment(conn, "default", "bad", PRO))
    good = await store.write(lambda conn: segments.insert_segment(conn, "default", "good", PRO))
    await lease_ran_out(store, bad.id, timedelta(minutes=2))  # both requests died; bad's lease ran out first
    await lease_ran_out(store, good.id, timedelta(minutes=1))
    reconcile = segments.reconcile

    def poisoned(conn: Connection, environment_id: str, evaluated: Any, profiles: Any) -> segments.Changes:
        if any(segment.id == bad.id for segment in evaluated):
            raise ValueError("a row this chunk cannot handle")
        return reconcile(conn, environment_id, evaluated, profiles)

    monkeypatch.setattr(segments, "reconcile", poisoned)
    evaluator = SegmentEvaluator(store, SegmentEvaluatorConfig(retry_seconds=60, max_retry_seconds=150))

    started = utcnow()
    assert await evaluator.drain() == 2  # bad, put off; then good, evaluated
    assert (await store.read(lambda conn: segments.get_segment(conn, "default", good.id))).evaluation.complete
    assert await members_of(store, "u1") == [good.id]
    assert started + timedelta(seconds=60) <= await lease(store, bad.id) <= utcnow() + timedelta(seconds=60)

    delays = []
    for _ in range(2):  # it keeps failing: put off twice as long, up to the cap
        await lease_ran_out(store, bad.id, timedelta(seconds=1))
        started = utcnow()
        assert await evaluator.drain() == 1
        delays.append(await lease(store, bad.id) - started)
    assert timedelta(seconds=120) <= delays[0] < timedelta(seconds=150) <= delays[1] < timedelta(seconds=180)

    monkeypatch.setattr(segments, "reconcile", reconcile)  # fixed: its next try evaluates it
    await lease_ran_out(store, bad.id, timedelta(seconds=1))
    assert await evaluator.drain() == 1
    assert await members_of(store, "u1") == sorted([bad.id, good.id])


# --- two processes' transactions locking segment and customers in opposite orders ---


@pytest.mark.parametrize("victim", ["the batch", "the write alone"])
@POSTGRESQL_ONLY
async def test_a_deadlock_between_two_processes_fails_no_write(
    store: Store, engine: Engine, database: URL, victim: str
) -> None:
    """Process X's group commit puts a profile write and a chunk of S in one transaction (customer, then
    segment); process Y evaluates the same chunk (segment, then customers). PostgreSQL aborts one of them;
    its writes are made again in transactions of their own, and every caller gets its answer."""
    for user in ["u0", "u1", "u2"]:
        await store.write(lambda conn, user=user: put_customer(conn, "default", user, {"plan": "pro"}))
    segment = await store.write(lambda conn: segments.insert_segment(conn, "default", "S", PRO))
    other = await Store.open(database, fsync=False)  # process Y
    released, written, tries = threading.Event(), threading.Event(), {"put": 0}
    timeouts = ("10ms", "5s") if victim == "the batch" else ("5s", "10ms")  # who finds the deadlock aborts

    def hold(conn: Connection) -> None:
        released.wait()

    def write_profile(conn: Connection) -> segments.Changes:
        conn.execute(sa.text(f"SET LOCAL deadlock_timeout = '{timeouts[0]}'"))
        changes = put_customer(conn, "default", "u2", {"plan": "pro", "seen": True}).changes
        tries["put"] += 1
        if tries["put"] == 1:  # Y now locks S and waits for u2
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            written.set()
            deadline = time.monotonic() + 30
            with engine.connect() as watcher:
                while not blocked_by(watcher, pid):
                    assert time.monotonic() < deadline, "Y never waited for u2"
                    time.sleep(0.01)
        return changes

    def chunk_of_y(conn: Connection) -> segments.Chunk:
        written.wait()
        conn.execute(sa.text(f"SET LOCAL deadlock_timeout = '{timeouts[1]}'"))
        return segments.evaluate_chunk(conn, segment.id, 1, None, limit=500)

    try:
        holding = asyncio.create_task(store.write(hold))  # X's next writes queue behind it: one batch
        await asyncio.sleep(0.1)
        profile = asyncio.create_task(store.write(write_profile))
        chunk = asyncio.create_task(
            store.write(lambda conn: segments.evaluate_chunk(conn, segment.id, 1, None, limit=500))
        )
        chunk_y = asyncio.create_task(other.write(chunk_of_y))
        await asyncio.sleep(0.1)
        released.set()
        await holding
        results = await asyncio.gather(profile, chunk, chunk_y)
    finally:
        await other.close()
    assert results[0].exited == 0  # every caller got its answer, none an error
    assert sorted(found.advanced for found in results[1:]) == [False, True]  # the chunk was evaluated once
    assert await members_of(store, "u2") == [segment.id]
    for user in ["u0", "u1", "u2"]:
        assert await segment_events(store, user) == [("segment-entered", segment.id)]
