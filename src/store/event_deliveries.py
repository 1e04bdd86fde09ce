"""The event deliveries outbox: which event triggers an event fires, decided in the event's transaction.

An event (sent to `POST /v1/{env}/events`, or emitted by a flow as an
analytics event) fires every event trigger of its environment that listens
for its name and is not disabled, except the triggers of the flow that
emitted it (the seed: a flow's events never start that same flow). A
segment trigger (store.segments) listens for `segment-entered` or
`segment-exited` of one segment: it fires only for the events whose
`segment_id` is its segment. Each
(event, trigger) pair becomes one pending row here, written with the event
itself, so a crash loses neither; the event dispatcher (flows.dispatcher,
with store.event_dispatch) then runs the trigger's mapping and turns the row
into an invocation or a recorded refusal. The row's id derives from the
pair, so writing it again is a no-op.

`hop` counts the events in a row: 1 for an event sent to the API, and the
emitting invocation's hop + 1 for a flow's own events. Past `MAX_HOPS` an
event fires nothing more, which ends cycles across flows (A's event starts
B, whose event starts A, …).

Settled deliveries are kept like the request log: the newest N per trigger
(`prune`, run in the background by ingress.retention).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.idempotent import derived_id, insert_new
from store.pruning import prune_newest
from store.tables import event_deliveries, triggers

MAX_HOPS = 5
PENDING = "pending"

# (environment, event name) -> [(trigger, flow, segment)]; the segment of a segment trigger, else None
Listeners = dict[tuple[str, str], list[tuple[str, str, str | None]]]


def enqueue(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    hops: int | Sequence[int],
    *,
    now: datetime,
    segment_ids: Sequence[str | None] | None = None,
) -> Counter[str]:
    """Write a pending delivery for every event trigger each event fires; how many each event (by id) fires
    (for an event written before, its deliveries are already there and are left as they are).

    `rows` are the events' `analytics_events` rows as inserted; `hops` the hop of all of them, or of each;
    `segment_ids` the segment each is about, for `segment-entered` / `segment-exited` events. The
    executor calls this for every batch, so an environment without event triggers must cost next to
    nothing: one query per environment tells which of the names have triggers, and only the events that
    have some go further.
    """
    if isinstance(hops, int) and hops > MAX_HOPS:
        return Counter()
    names: dict[str, set[str]] = {}
    for row in rows:
        names.setdefault(row["environment_id"], set()).add(row["event_name"])
    listeners = _listeners(conn, names)
    if not listeners:
        return Counter()
    each_hop = [hops] * len(rows) if isinstance(hops, int) else hops
    each_segment = [None] * len(rows) if segment_ids is None else segment_ids
    deliveries: list[dict[str, Any]] = [
        {
            "id": derived_id("dlv", row["id"], trigger_id),
            "environment_id": row["environment_id"],
            "trigger_id": trigger_id,
            "event_id": row["id"],
            "hop": hop,
            "status": PENDING,
            "created_at": now,
            "updated_at": now,
            "due_at": now,
        }
        for row, hop, segment_id in zip(rows, each_hop, each_segment, strict=True)
        if hop <= MAX_HOPS
        for trigger_id, flow_id, listened in listeners.get((row["environment_id"], row["event_name"]), ())
        if flow_id != row["flow_id"] and listened in (None, segment_id)
    ]
    insert_new(conn, event_deliveries, deliveries)
    return Counter(delivery["event_id"] for delivery in deliveries)


def delivery_counts(conn: Connection, event_ids: Iterable[str]) -> Counter[str]:
    """How many deliveries each of these stored events fired."""
    wanted = list(event_ids)
    if not wanted:
        return Counter()
    query = (
        sa.select(event_deliveries.c.event_id, sa.func.count())
        .where(event_deliveries.c.event_id.in_(wanted))
        .group_by(event_deliveries.c.event_id)
    )
    return Counter({event_id: count for event_id, count in conn.execute(query)})


# Built once: the executor runs it every batch, and compiling it cost more than running it. The names are
# compared here rather than in SQL: an expanding IN made the query cost twice as much.
_LISTENING = sa.select(triggers.c.id, triggers.c.flow_id, triggers.c.event_name, triggers.c.segment_id).where(
    triggers.c.environment_id == sa.bindparam("environment_id"),
    triggers.c.type.in_(("event", "segment")),
    triggers.c.mode != "disabled",
)


def _listeners(conn: Connection, names: dict[str, set[str]]) -> Listeners:
    """The event and segment triggers listening for each (environment, name): one query per environment."""
    listening: Listeners = {}
    for environment_id, wanted in names.items():
        for trigger_id, flow_id, name, segment_id in conn.execute(_LISTENING, {"environment_id": environment_id}):
            if name in wanted:
                listening.setdefault((environment_id, name), []).append((trigger_id, flow_id, segment_id))
    return listening


def prune(conn: Connection, trigger_ids: Iterable[str | None], keep: int, limit: int | None = None) -> int:
    """Delete all but the newest `keep` settled deliveries of each trigger (store.pruning); pending ones stay."""
    return prune_newest(conn, event_deliveries, trigger_ids, keep, limit, prunable=event_deliveries.c.status != PENDING)


def delivered_trigger_ids(conn: Connection) -> list[str | None]:
    """Every trigger with deliveries; for a full prune at start."""
    return list(conn.execute(sa.select(event_deliveries.c.trigger_id).distinct()).scalars())
