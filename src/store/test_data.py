"""Removing an environment's test data, a bounded chunk per transaction.

Test data is what test runs and test events left: test invocations with their
flow instances (and the progress of one still being expanded), cards and
analytics events marked `test`, and those events' deliveries to event
triggers. Every statement names `mode = 'test'` or `event_source = 'test'`
(a test invocation's instances, cards and events are all marked so), so no
live row is ever deleted. Test users, the request log, samples and bulk
tasks are configuration and logs, not test data, and stay.

Runs go first, in flight or not, so that nothing makes new test cards or
events for them afterwards. An invocation goes only with, or after, the last
of its instances (the executor reads the invocation of every instance it
advances), and one still being expanded is marked failed first, so the
executor starts none of its users again. On PostgreSQL the invocations are
locked and each instance's DELETE waits for an executor batch holding it;
a later statement of the chunk then sees what that batch committed. The
executor skips what a chunk holds (SKIP LOCKED), and a card it waits on that
is gone ends the wait at its timeout (flows.interpreter). Effects are never
written twice, so nothing deleted comes back.

Cards and events go afterwards, in sequence order up to a bound read when
their walk starts: what is recorded later is left for the next removal.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import expansions
from store.tables import analytics_events, cards, event_deliveries, flow_instances, flows, invocations

CHUNK = 1_000  # rows deleted per transaction, about: a few milliseconds of the SQLite writer
SCAN = 50_000  # sequence numbers a card or event chunk looks through, however few of them are test data
TEST = "test"


@dataclass(frozen=True)
class RunsChunk:
    """What one chunk of runs deleted, and the flow whose test invocations the next one starts with
    (None: none left up to the bound)."""

    invocations: int
    instances: int
    next_flow: str | None


@dataclass(frozen=True)
class RowsChunk:
    """What one chunk of cards or events deleted (`deliveries`: of those events), and the sequence the next
    one starts after (None: the bound is reached)."""

    deleted: int
    deliveries: int
    next_after: int | None


def last_seq(conn: Connection, table: sa.Table) -> int:
    """The highest sequence of the table (0 if empty): the bound of a walk that started now."""
    found: int | None = conn.execute(sa.select(sa.func.max(table.c.seq))).scalar()
    return found or 0


def remove_test_runs(conn: Connection, environment_id: str, *, from_flow: str, through: int, limit: int) -> RunsChunk:
    """Delete test invocations accepted up to sequence `through` with their instances, the flows' in id order
    from `from_flow` on: at most `limit` rows.

    A flow's test invocations are one range of the (flow, mode, key) index.
    An invocation with more instances than the chunk has room for loses a
    slice of them, and the next chunk comes back to it.
    """
    flow_ids = conn.execute(
        sa.select(flows.c.id)
        .where(flows.c.environment_id == environment_id, flows.c.id >= from_flow)
        .order_by(flows.c.id)
    ).scalars()
    removed = {"invocations": 0, "instances": 0}
    for flow_id in flow_ids.all():
        heads = conn.execute(
            sa.select(invocations.c.id, invocations.c.status)
            .where(invocations.c.flow_id == flow_id, invocations.c.mode == TEST, invocations.c.seq <= through)
            .order_by(invocations.c.seq)
            .limit(limit)
            .with_for_update()
        ).all()
        for head in heads:
            room = limit - removed["invocations"] - removed["instances"]
            if room <= 0:
                return RunsChunk(removed["invocations"], removed["instances"], flow_id)
            if head.status == expansions.PENDING:
                expansions.finish(conn, [head.id], expansions.FAILED)
            slice_ = sa.select(flow_instances.c.id).where(flow_instances.c.invocation_id == head.id).limit(room)
            instance_ids = conn.execute(slice_).scalars().all()
            if instance_ids:
                deleted = sa.delete(flow_instances).where(flow_instances.c.id.in_(instance_ids))
                removed["instances"] += conn.execute(deleted).rowcount
            if len(instance_ids) == room:  # perhaps not the last of them
                return RunsChunk(removed["invocations"], removed["instances"], flow_id)
            expansions.forget_progress(conn, [head.id])
            removed["invocations"] += conn.execute(sa.delete(invocations).where(invocations.c.id == head.id)).rowcount
        if len(heads) == limit:  # perhaps not the last of them
            return RunsChunk(removed["invocations"], removed["instances"], flow_id)
    return RunsChunk(removed["invocations"], removed["instances"], None)


def remove_test_cards(conn: Connection, environment_id: str, *, after: int, through: int, limit: int) -> RowsChunk:
    """Delete the environment's test cards after sequence `after`, up to `through`: at most `limit`."""
    # The environment is compared as an expression no index serves: SQLite would otherwise walk every card of
    # the environment (its index leads with it) instead of the chunk's range of sequence numbers.
    test = sa.and_(cards.c.environment_id.concat("") == environment_id, cards.c.event_source == TEST)
    return _remove_rows(conn, cards, test, after, through, limit)


def remove_test_events(conn: Connection, environment_id: str, *, after: int, through: int, limit: int) -> RowsChunk:
    """Delete the environment's test analytics events after sequence `after`, up to `through` (at most
    `limit`), with their deliveries to event triggers: a pending one has nothing left to deliver."""
    test = sa.and_(analytics_events.c.environment_id == environment_id, analytics_events.c.event_source == TEST)
    return _remove_rows(conn, analytics_events, test, after, through, limit)


def _remove_rows(
    conn: Connection, table: sa.Table, test: sa.ColumnElement[bool], after: int, through: int, limit: int
) -> RowsChunk:
    """Delete the test rows of a range of sequence numbers: up to the `limit`-th of them, at most SCAN numbers
    on. The end is looked up first, so the DELETE reads one bounded range."""
    seq = table.c.seq
    end = min(after + SCAN, through)
    nth = sa.select(seq).where(test, seq > after, seq <= end).order_by(seq).offset(limit - 1).limit(1)
    nth_seq: int | None = conn.execute(nth).scalar()
    end = end if nth_seq is None else nth_seq
    within = sa.and_(test, seq > after, seq <= end)
    deliveries = 0
    if table is analytics_events:
        events = sa.select(analytics_events.c.id).where(within)
        deliveries = conn.execute(sa.delete(event_deliveries).where(event_deliveries.c.event_id.in_(events))).rowcount
    deleted = conn.execute(sa.delete(table).where(within)).rowcount
    return RowsChunk(deleted, deliveries, None if end >= through else end)
