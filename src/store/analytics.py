"""Analytics events: what flows did, per user, in the order it was recorded.

A flow's events are written only as effects of a committed step (see
flows.batch and store.cards), each with an id derived from the effect, so a
step that runs again writes nothing new; custom events (ingress.api.events)
and segment entries and exits (store.segments) are written in the transaction
of the request or profile change that causes them.
Reading goes forward by sequence with a cursor, the way an export or a
dashboard tails them (the order recorded, not `timestamp`: see `list_events`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.idempotent import derived_id
from store.tables import analytics_events

FLOW_EVENTS = (
    "action-flow-started",
    "action-flow-completed",
    "action-flow-failed",
    "card-published",
    "card-completed",
    "card-dismissed",
)


@dataclass(frozen=True)
class AnalyticsEvent:
    seq: int
    id: str
    environment_id: str
    event_name: str
    timestamp: datetime
    end_user_id: str | None
    flow_id: str | None
    flow_instance_id: str | None
    flow_invocation_id: str | None
    card_instance_id: str | None
    event_source: str
    properties: dict[str, Any]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class EventSubject:
    """Who and what an event is about: one user's flow instance, or (no user, no instance) an invocation the
    executor set aside before it started them (flows.batch.set_aside)."""

    environment_id: str
    end_user_id: str | None
    flow_id: str
    flow_instance_id: str | None
    flow_invocation_id: str
    event_source: str
    metadata: dict[str, Any]


def event_row(
    subject: EventSubject,
    event_name: str,
    timestamp: datetime,
    properties: dict[str, Any],
    *,
    effect: str,
    card_instance_id: str | None = None,
) -> dict[str, Any]:
    """An insert row; `effect` names the step outcome it records (its id derives from it)."""
    return {
        "id": derived_id("evt", effect, event_name),
        "environment_id": subject.environment_id,
        "event_name": event_name,
        "timestamp": timestamp,
        "end_user_id": subject.end_user_id,
        "flow_id": subject.flow_id,
        "flow_instance_id": subject.flow_instance_id,
        "flow_invocation_id": subject.flow_invocation_id,
        "card_instance_id": card_instance_id,
        "event_source": subject.event_source,
        "properties": properties,
        "metadata": subject.metadata,
    }


def flowless_event_row(
    event_id: str,
    environment_id: str,
    event_name: str,
    timestamp: datetime,
    end_user_id: str,
    properties: dict[str, Any],
    *,
    metadata: dict[str, Any] | None = None,
    event_source: str = "live",
) -> dict[str, Any]:
    """An insert row for an event no flow emitted: a custom event, or a segment's entry or exit."""
    return {
        "id": event_id,
        "environment_id": environment_id,
        "event_name": event_name,
        "timestamp": timestamp,
        "end_user_id": end_user_id,
        "flow_id": None,
        "flow_instance_id": None,
        "flow_invocation_id": None,
        "card_instance_id": None,
        "event_source": event_source,
        "properties": properties,
        "metadata": {} if metadata is None else metadata,
    }


@dataclass(frozen=True)
class EventFilter:
    flow_id: str | None = None
    event_name: str | None = None
    event_source: str | None = None
    user_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_test: bool = True


def list_events(
    conn: Connection,
    environment_id: str,
    where: EventFilter,
    *,
    after: int | None,
    limit: int,
    through: int | None = None,
) -> tuple[list[AnalyticsEvent], int | None]:
    """A page in the order the events were recorded, and the cursor of the next page (None at the end).

    Recorded order (`seq`), not `timestamp` order: an event may be sent with
    a time in the past, and a reader paging by time would already be past it;
    by sequence, every new event comes after every page read. `through` ends
    the listing at a sequence (an export ends at the last event of its start).
    """
    table = analytics_events
    query = sa.select(table).where(table.c.environment_id == environment_id)
    for column, value in (
        (table.c.flow_id, where.flow_id),
        (table.c.event_name, where.event_name),
        (table.c.event_source, where.event_source),
        (table.c.end_user_id, where.user_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.since is not None:
        query = query.where(table.c.timestamp >= where.since)
    if where.until is not None:
        query = query.where(table.c.timestamp <= where.until)
    if not where.include_test:
        query = query.where(table.c.event_source != "test")
    if after is not None:
        query = query.where(table.c.seq > after)
    if through is not None:
        query = query.where(table.c.seq <= through)
    query = query.order_by(table.c.seq).limit(limit + 1)
    events = [AnalyticsEvent(**row._mapping) for row in conn.execute(query)]
    if len(events) > limit:
        return events[:limit], events[limit - 1].seq
    return events, None


def last_seq(conn: Connection, environment_id: str) -> int | None:
    """The sequence of the environment's latest event (None without one): one step down its index."""
    query = sa.select(sa.func.max(analytics_events.c.seq)).where(analytics_events.c.environment_id == environment_id)
    found: int | None = conn.execute(query).scalar()
    return found
