"""Custom events: sent to `POST /v1/{env}/events`, kept as analytics events, firing event triggers.

An event and the deliveries it fires (store.event_deliveries) are written in
one transaction, so an accepted event never misses its triggers. An event
sent with the client's `id` is stored under an id derived from (environment,
that id): a retry finds it and stores nothing, fires nothing, and is
answered with the original's id and deliveries. The derived id is a stable
hash with no time part (the retry's time differs, so no time can lead it);
an event without a client id gets a new, time-ordered id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.analytics import FLOW_EVENTS
from store.event_deliveries import FiredEvent, delivery_counts, enqueue_each
from store.idempotent import derived_id, insert_new
from store.ids import new_id
from store.segments import events_recorded
from store.tables import analytics_events

MAX_EVENT_NAME = 128
EVENT_NAME_RULE = f"a string of 1 to {MAX_EVENT_NAME} characters"
#: What flows and segments emit: an event sent under one of these names would pass for theirs.
RESERVED_EVENT_NAMES = frozenset((*FLOW_EVENTS, "segment-entered", "segment-exited"))
#: What a stored event is compared by when its client id comes again (not its time: a retry may default it anew).
COMPARED = ("event_name", "end_user_id", "properties", "metadata")


def valid_event_name(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= MAX_EVENT_NAME


@dataclass(frozen=True)
class CustomEvent:
    environment_id: str
    name: str
    end_user_id: str
    properties: dict[str, Any]
    metadata: dict[str, Any]
    timestamp: datetime
    client_id: str | None  # the sender's `id`, which makes a retry a repeat
    event_source: str = "live"  # "test": sent to `POST /v1/{env}/events/test`

    @property
    def stored_id(self) -> str | None:
        """The id a client id stores the event under (None without one: each event is new); test and live
        events are separate namespaces, as invocations are."""
        if self.client_id is None:
            return None
        namespace = "custom-event" if self.event_source == "live" else "test-event"
        return derived_id("evt", self.environment_id, namespace, self.client_id)


@dataclass(frozen=True)
class Recorded:
    id: str
    deliveries: int  # event triggers it fired (a repeat: the original's)
    duplicate: bool  # an event with this client id was stored before; nothing new was


class ClientIdConflict(Exception):
    """Client ids already stored with another event; nothing was written."""

    def __init__(self, indexes: list[int]) -> None:
        super().__init__(f"client ids reused with another event at {indexes}")
        self.indexes = indexes


def record_events(conn: Connection, events: Sequence[CustomEvent], *, now: datetime) -> list[Recorded]:
    """Store the new `events` with their deliveries (hop 1) and the segment entries and exits they cause;
    repeats are left as stored. All or nothing: a client id stored with another event raises ClientIdConflict
    before anything is written."""
    ids = [event.stored_id or new_id("evt") for event in events]
    stored = _stored(conn, [event.stored_id for event in events if event.stored_id is not None])
    conflicts = [
        index
        for index, (event, event_id) in enumerate(zip(events, ids, strict=True))
        if event_id in stored and stored[event_id] != _compared(event)
    ]
    if conflicts:
        raise ClientIdConflict(conflicts)
    new = [(event, event_id) for event, event_id in zip(events, ids, strict=True) if event_id not in stored]
    insert_new(conn, analytics_events, [_row(event, event_id) for event, event_id in new])
    fired = [FiredEvent(event_id, event.environment_id, event.name, None) for event, event_id in new]
    counts = enqueue_each(conn, fired, hop=1, now=now) + delivery_counts(conn, stored)
    # Segments are live data: a test event never moves a customer in or out of one.
    live = [(event.environment_id, event.end_user_id, event.name) for event, _ in new if event.event_source == "live"]
    events_recorded(conn, live)
    return [Recorded(event_id, counts[event_id], event_id in stored) for event_id in ids]


def _compared(event: CustomEvent) -> tuple[Any, ...]:
    return (event.name, event.end_user_id, event.properties, event.metadata)


def _stored(conn: Connection, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    if not ids:
        return {}
    columns = [analytics_events.c[name] for name in COMPARED]
    query = sa.select(analytics_events.c.id, *columns).where(analytics_events.c.id.in_(ids))
    return {row[0]: tuple(row[1:]) for row in conn.execute(query)}


def _row(event: CustomEvent, event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "environment_id": event.environment_id,
        "event_name": event.name,
        "timestamp": event.timestamp,
        "end_user_id": event.end_user_id,
        "flow_id": None,
        "flow_instance_id": None,
        "flow_invocation_id": None,
        "card_instance_id": None,
        "event_source": event.event_source,
        "properties": event.properties,
        "metadata": event.metadata,
    }
