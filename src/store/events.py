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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.analytics import FLOW_EVENTS, flowless_event_row
from store.event_deliveries import delivery_counts, enqueue
from store.idempotent import derived_id, insert_new
from store.ids import new_id
from store.segments import events_recorded, hold_rules
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


@dataclass(frozen=True)
class ClientIdConflict:
    """A request's outcome when client ids of it were stored with other events: nothing of it was written."""

    indexes: list[int]  # the request's events whose ids conflict


@dataclass(frozen=True)
class EventsRequest:
    """The events of one request to `POST /v1/{env}/events`: recorded all or nothing."""

    events: Sequence[CustomEvent]
    now: datetime


def record_requests(conn: Connection, requests: list[EventsRequest]) -> list[list[Recorded] | ClientIdConflict]:
    """A `store.writer` batch: the new events of every request with their deliveries (hop 1) and the segment
    entries and exits they cause, in one set of statements; repeats are left as stored.

    Each request is all or nothing: one whose client ids were stored with other events gets its
    ClientIdConflict and writes nothing. A client id that an earlier request of the batch stored is a repeat
    (or a conflict) for a later one, as if the two had come one after the other.
    """
    segmented = {
        event.environment_id for request in requests for event in request.events if event.event_source == "live"
    }
    for environment_id in sorted(segmented):  # before anything is locked: the order is rules, then rows (hold_rules)
        hold_rules(conn, environment_id)
    # At most the writer's max_batch (512) requests of 100 events: 51,200 ids, within PostgreSQL's 65,535
    # parameters; a larger batch would fail and be retried a request at a time.
    stored = _stored(conn, [event.stored_id for request in requests for event in request.events if event.stored_id])
    stored_before = set(stored)  # what their deliveries are counted from; the batch's own come from `enqueue`
    outcomes: list[list[Recorded] | ClientIdConflict] = []
    new: list[tuple[CustomEvent, str]] = []
    for request in requests:
        ids = [event.stored_id or new_id("evt") for event in request.events]
        conflicts = [
            index
            for index, (event, event_id) in enumerate(zip(request.events, ids, strict=True))
            if event_id in stored and stored[event_id] != _compared(event)
        ]
        if conflicts:
            outcomes.append(ClientIdConflict(conflicts))
            continue
        repeats = [event_id in stored for event_id in ids]
        for event, event_id, repeat in zip(request.events, ids, repeats, strict=True):
            if not repeat:
                new.append((event, event_id))
                stored[event_id] = _compared(event)
        outcomes.append([Recorded(event_id, 0, repeat) for event_id, repeat in zip(ids, repeats, strict=True)])
    rows = [
        flowless_event_row(
            event_id,
            event.environment_id,
            event.name,
            event.timestamp,
            event.end_user_id,
            event.properties,
            metadata=event.metadata,
            event_source=event.event_source,
        )
        for event, event_id in new
    ]
    insert_new(conn, analytics_events, rows)
    now = max(request.now for request in requests)
    repeated = {
        record.id for outcome in outcomes if isinstance(outcome, list) for record in outcome if record.duplicate
    }
    counts = enqueue(conn, rows, 1, now=now) + delivery_counts(conn, repeated & stored_before)
    # Segments are live data: a test event never moves a customer in or out of one.
    live = [(event.environment_id, event.end_user_id, event.name) for event, _ in new if event.event_source == "live"]
    events_recorded(conn, live)
    return [
        outcome
        if isinstance(outcome, ClientIdConflict)
        else [replace(record, deliveries=counts[record.id]) for record in outcome]
        for outcome in outcomes
    ]


def _compared(event: CustomEvent) -> tuple[Any, ...]:
    return (event.name, event.end_user_id, event.properties, event.metadata)


def _stored(conn: Connection, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    if not ids:
        return {}
    columns = [analytics_events.c[name] for name in COMPARED]
    query = sa.select(analytics_events.c.id, *columns).where(analytics_events.c.id.in_(ids))
    return {row[0]: tuple(row[1:]) for row in conn.execute(query)}
