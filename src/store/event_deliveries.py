"""The event deliveries outbox: which event triggers an event fires, decided in the event's transaction.

An event (sent to `POST /v1/{env}/events`, or emitted by a flow as an
analytics event) fires every event trigger of its environment that listens
for its name and is not disabled, except the triggers of the flow that
emitted it (the seed: a flow's events never start that same flow). Each
(event, trigger) pair becomes one pending row here, written with the event
itself, so a crash loses neither; the event dispatcher then runs the
trigger's mapping and turns the row into an invocation or a recorded refusal.
The row's id derives from the pair, so writing it again is a no-op.

`hop` counts the events in a row: 1 for an event sent to the API, and the
emitting invocation's hop + 1 for a flow's own events. Past `MAX_HOPS` an
event fires nothing more, which ends cycles across flows (A's event starts
B, whose event starts A, …).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.idempotent import derived_id, insert_new
from store.tables import event_deliveries, triggers

MAX_HOPS = 5
PENDING = "pending"


@dataclass(frozen=True)
class FiredEvent:
    """What decides the triggers an event fires (the event itself is an `analytics_events` row)."""

    id: str  # analytics_events.id
    environment_id: str
    name: str
    flow_id: str | None  # the flow that emitted it; None for an event sent to the API


def enqueue(conn: Connection, events: Sequence[FiredEvent], *, hop: int, now: datetime) -> int:
    """Write a pending delivery for every event trigger each of `events` fires; how many they fire
    (for an event written before, its deliveries are already there and are left as they are)."""
    if hop > MAX_HOPS or not events:
        return 0
    listening: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (environment, event name) -> (trigger, flow)
    for environment_id in {event.environment_id for event in events}:
        names = {event.name for event in events if event.environment_id == environment_id}
        query = sa.select(triggers.c.id, triggers.c.flow_id, triggers.c.event_name).where(
            triggers.c.environment_id == environment_id,
            triggers.c.type == "event",
            triggers.c.mode != "disabled",
            triggers.c.event_name.in_(names),
        )
        for trigger_id, flow_id, name in conn.execute(query):
            listening.setdefault((environment_id, name), []).append((trigger_id, flow_id))
    rows = [
        {
            "id": derived_id("dlv", event.id, trigger_id),
            "environment_id": event.environment_id,
            "trigger_id": trigger_id,
            "event_id": event.id,
            "hop": hop,
            "status": PENDING,
            "created_at": now,
            "updated_at": now,
        }
        for event in events
        for trigger_id, flow_id in listening.get((event.environment_id, event.name), [])
        if flow_id != event.flow_id
    ]
    insert_new(conn, event_deliveries, rows)
    return len(rows)
