"""Card instances: rendered cards in front of users, and the actions users take on them.

A card is created only by the executor, once per (flow instance, step): its
id derives from both and a unique index backs it. Completing or dismissing a
card records the analytics event (with the event trigger deliveries it causes,
store.event_deliveries) and releases a wait of its flow instance on
that card, in one transaction that takes turns with the executor's on that
instance (see `act_on_card`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.analytics import EventSubject, event_row
from store.event_deliveries import enqueue
from store.flow_instances import FlowInstance
from store.idempotent import insert_new
from store.tables import analytics_events, cards, flow_instances, invocations

#: action -> (the card's new status, the analytics event it emits)
ACTIONS = {"complete": ("completed", "card-completed"), "dismiss": ("dismissed", "card-dismissed")}
STATUSES = ("active", "completed", "dismissed", "expired")


@dataclass(frozen=True)
class Card:
    seq: int
    id: str
    environment_id: str
    user_id: str
    flow_id: str
    flow_instance_id: str
    flow_invocation_id: str
    step_id: str
    template_id: str
    template_version: int | None
    event_source: str
    status: str
    definition: dict[str, Any]
    payload: dict[str, Any]
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def status_at(self, now: datetime) -> str:
        """`expired` is an active card past its expiry; no sweeper needs to run for it."""
        if self.status == "active" and self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return self.status


def _status_is(status: str, now: datetime) -> sa.ColumnElement[bool]:
    not_expired = sa.or_(cards.c.expires_at.is_(None), cards.c.expires_at > now)
    if status == "active":
        return sa.and_(cards.c.status == "active", not_expired)
    if status == "expired":
        return sa.and_(cards.c.status == "active", sa.not_(not_expired))
    return cards.c.status == status


def list_user_cards(
    conn: Connection,
    environment_id: str,
    user_id: str,
    *,
    now: datetime,
    event_source: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> tuple[list[Card], int | None]:
    """A page of the user's cards, newest first, and the next page's cursor."""
    query = sa.select(cards).where(cards.c.environment_id == environment_id, cards.c.user_id == user_id)
    if event_source is not None:
        query = query.where(cards.c.event_source == event_source)
    if status is not None:
        query = query.where(_status_is(status, now))
    if before is not None:
        query = query.where(cards.c.seq < before)
    query = query.order_by(cards.c.seq.desc()).limit(limit + 1)
    found = [Card(**row._mapping) for row in conn.execute(query)]
    if len(found) > limit:
        return found[:limit], found[limit - 1].seq
    return found, None


def get_card(conn: Connection, environment_id: str, card_id: str) -> Card | None:
    query = sa.select(cards).where(cards.c.id == card_id, cards.c.environment_id == environment_id)
    row = (conn.execute(query)).first()
    return Card(**row._mapping) if row else None


@dataclass(frozen=True)
class ActionResult:
    verdict: Literal["done", "not_found", "not_active"]
    card: Card | None
    status: str | None = None  # the card's status when not active


def act_on_card(conn: Connection, environment_id: str, card_id: str, action: str, now: datetime) -> ActionResult:
    """Complete or dismiss an active card, record the event, release its flow's wait on it if not yet due.

    The executor settles a wait on a card (at its timeout or at the card's
    expiry) in a transaction of its own, concurrently on PostgreSQL. Both
    sides lock the card's flow instance before they look at the card (the
    executor when it claims the instance), so they take turns, and the
    action is judged no earlier than the instance's last step: an action
    that comes second sees the card expired if the flow went on as if it
    were, and is recorded after a timeout that came first. A wait due at or
    before the action is its timer's, whoever commits first.
    """
    instance = _lock_flow_instance(conn, environment_id, card_id)  # None once retention pruned it, long finished
    card = get_card(conn, environment_id, card_id)
    if card is None:
        return ActionResult("not_found", None)
    at = now if instance is None else max(now, instance.updated_at)
    current = card.status_at(at)
    if current != "active":
        return ActionResult("not_active", card, current)
    status, event_name = ACTIONS[action]
    conn.execute(sa.update(cards).where(cards.c.id == card_id).values(status=status, updated_at=at))
    subject = EventSubject(
        environment_id=card.environment_id,
        end_user_id=card.user_id,
        flow_id=card.flow_id,
        flow_instance_id=card.flow_instance_id,
        flow_invocation_id=card.flow_invocation_id,
        event_source=card.event_source,
        metadata=card.payload.get("metadata") or {},
    )
    properties = {"cardTemplateId": card.template_id, "templateVersion": card.template_version, "stepId": card.step_id}
    event = event_row(subject, event_name, at, properties, effect=card.id, card_instance_id=card.id)
    insert_new(conn, analytics_events, [event])
    enqueue(conn, [event], [_hop(conn, instance) + 1], now=at)
    if (
        instance is not None
        and instance.status == "waiting"
        and instance.waiting_card_id == card_id
        and instance.due_at is not None
        and at < instance.due_at
    ):
        conn.execute(
            sa.update(flow_instances)
            .where(flow_instances.c.id == instance.id)
            .values(due_at=at, released_by=event_name, updated_at=at)
        )
    return ActionResult("done", replace(card, status=status, updated_at=at))


def _hop(conn: Connection, instance: FlowInstance | None) -> int:
    """The hop of the run that sent the card (store.event_deliveries); 0 once retention pruned it, or if no event
    started it."""
    if instance is None:
        return 0
    query = sa.select(invocations.c.hop).where(invocations.c.id == instance.invocation_id)
    return conn.execute(query).scalar() or 0


def _lock_flow_instance(conn: Connection, environment_id: str, card_id: str) -> FlowInstance | None:
    """The flow instance that sent the card, locked on PostgreSQL (SQLite's writer excludes everyone anyway)."""
    sender = sa.select(cards.c.flow_instance_id).where(cards.c.id == card_id, cards.c.environment_id == environment_id)
    query = sa.select(flow_instances).where(flow_instances.c.id == sender.scalar_subquery()).with_for_update()
    row = conn.execute(query).first()
    return FlowInstance(**row._mapping) if row else None
