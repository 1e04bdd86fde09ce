"""The event dispatcher's side of the outbox: read pending deliveries, settle them with their invocations.

The dispatcher (flows.dispatcher) reads a batch of pending deliveries with
their events and triggers, runs the mappings outside any transaction (a
JavaScript mapping may take a second), then settles the batch in one write
transaction: each delivery still pending is claimed again (on PostgreSQL
with FOR UPDATE SKIP LOCKED, so a delivery another process is settling is
left to it), its trigger request accepted as an invocation, and its row
marked accepted, duplicate, skipped or failed, or left pending with a later
due time (a transient failure, retried). A delivery's invocation key
derives from the delivery, so even a delivery settled twice starts one run.

Every attempt is counted on the row, and a settlement applies only to the
attempt it was decided for: one whose delivery another process attempted
meanwhile (a rival that read it too) is dropped, so an attempt is counted
once and a retry is never scheduled twice.

A live run starts only from an event recorded once the trigger had taken
effect: when its flow was first published, or when it was made if that was
later, the cutoff of its existing members (store.bulk_tasks.ExistingMembers).
A delivery written before then (pending while the flow was published) is
skipped `predates_trigger`, so a customer who entered a segment just before
the publication is an existing member and not the trigger's too: each entry
starts one run. The publication is read by the settling transaction after
its claim, and a publication in progress is waited for (`_publications`).

A live run starts the flow version whose variables its mapping applied: a
delivery mapped before another version was published is left pending and
mapped again, as one whose trigger changed is, and no version is published
between that check and the acceptance (`_publications` holds it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.analytics import AnalyticsEvent
from store.clock import utcnow
from store.event_deliveries import PENDING
from store.flows import Publication, publications
from store.invocations import Acceptance, AcceptRequest, accept_batch
from store.tables import UtcDateTime, analytics_events, event_deliveries, flows, triggers
from store.triggers import TriggerWithFlow, took_effect, triggers_with_flows

ACCEPTED, DUPLICATE, SKIPPED, FAILED = "accepted", "duplicate", "skipped", "failed"

#: An acceptance's verdict as a delivery's (status, cause).
_VERDICTS = {
    "accepted": (ACCEPTED, None),
    "duplicate": (DUPLICATE, None),
    "conflict": (FAILED, "idempotency_conflict"),
    "flow_archived": (SKIPPED, "flow_archived"),
    "flow_not_published": (FAILED, "flow_not_published"),
}


@dataclass(frozen=True)
class PendingDelivery:
    id: str
    trigger_id: str
    hop: int
    attempts: int  # made before this one
    event: AnalyticsEvent
    target: TriggerWithFlow | None  # None: the trigger is gone


@dataclass
class Settlement:
    """What the dispatcher made of one delivery: a request to accept, or the status to record (PENDING: try
    again at `retry_at`)."""

    delivery_id: str
    trigger_revision: int | None  # the trigger's revision the decision was made under
    status: str  # ACCEPTED when `accept` is set: the acceptance's verdict decides
    cause: str | None = None
    detail: dict[str, Any] | None = None
    accept: AcceptRequest | None = None
    attempts: int = 0  # the delivery's attempts before this one, as read: a settle of another attempt is dropped
    retry_at: datetime | None = None
    # The flow's published version when the mapping read it (None: none), whose variables a live run's applied.
    flow_version: int | None = None


@dataclass(frozen=True)
class Settled:
    """What one settle did: deliveries settled, how many of them started a run, and how many were left pending
    to be mapped again (their trigger, or the flow version a live run would start, changed since)."""

    settled: int
    accepted: int
    stale: int = 0

    def __add__(self, other: Settled) -> Settled:
        return Settled(self.settled + other.settled, self.accepted + other.accepted, self.stale + other.stale)


# One range of the (status, due_at, seq) index: a retry not due yet is not in it, so never holds up the rest.
_PENDING = (
    sa.select(
        event_deliveries.c.id,
        event_deliveries.c.trigger_id,
        event_deliveries.c.hop,
        event_deliveries.c.attempts,
        analytics_events,
    )
    .join(analytics_events, analytics_events.c.id == event_deliveries.c.event_id)
    .where(event_deliveries.c.status == PENDING, event_deliveries.c.due_at <= sa.bindparam("now"))
    .order_by(event_deliveries.c.due_at, event_deliveries.c.seq)
    .limit(sa.bindparam("limit"))
)
_EVENT_COLUMNS = tuple(column.name for column in analytics_events.columns)


def pending(conn: Connection, limit: int, now: datetime) -> list[PendingDelivery]:
    """The pending deliveries due at `now`, longest due first, each with its event and its trigger's target."""
    rows = conn.execute(_PENDING, {"limit": limit, "now": now}).all()
    targets = load_targets(conn, {row.trigger_id for row in rows})
    found = []
    for row in rows:
        values = row._mapping
        event = AnalyticsEvent(**{name: values[analytics_events.c[name]] for name in _EVENT_COLUMNS})
        delivery_id = values[event_deliveries.c.id]
        target = targets.get(row.trigger_id)
        found.append(PendingDelivery(delivery_id, row.trigger_id, row.hop, row.attempts, event, target))
    return found


def load_targets(conn: Connection, trigger_ids: set[str]) -> dict[str, TriggerWithFlow]:
    if not trigger_ids:
        return {}
    return {found.trigger.id: found for found in triggers_with_flows(conn, triggers.c.id.in_(trigger_ids))}


@dataclass(frozen=True)
class _Claim:
    """A delivery as its settling transaction claimed it, with its trigger (`mode` None: gone)."""

    attempts: int
    mode: str | None
    revision: int | None
    recorded_at: datetime  # the delivery's, written with its event
    flow_id: str | None
    trigger_created_at: datetime | None

    def live_refusal(self, accept: AcceptRequest, publication: Publication | None) -> tuple[str, str] | None:
        """(status, cause) when a live run is not to start from the delivery: its flow was never published, or
        the event was recorded before the trigger took effect (the flow's first publication, or the trigger's
        creation if later). A test run needs no publication and is not cut: its trigger offers no start of
        existing members (that start is live)."""
        if accept.mode != "live":
            return None
        if publication is None:  # as store.invocations would say, but as read before it (_publications)
            return FAILED, "flow_not_published"
        assert self.trigger_created_at is not None  # the trigger is there: it has a mode
        if self.recorded_at < took_effect(publication.first_at, self.trigger_created_at):
            return SKIPPED, "predates_trigger"
        return None


_CLAIM = (
    sa.select(  # the id, then a _Claim's fields in order
        event_deliveries.c.id,
        event_deliveries.c.attempts,
        triggers.c.mode,
        triggers.c.revision,
        event_deliveries.c.created_at.label("recorded_at"),  # written with its event
        triggers.c.flow_id,
        triggers.c.created_at.label("trigger_created_at"),
    )
    .outerjoin(triggers, triggers.c.id == event_deliveries.c.trigger_id)
    .where(event_deliveries.c.id.in_(sa.bindparam("ids", expanding=True)), event_deliveries.c.status == PENDING)
    .with_for_update(of=event_deliveries, skip_locked=True)
)

_SETTLE = (
    sa.update(event_deliveries)
    .where(event_deliveries.c.id == sa.bindparam("delivery_id"))
    .values(
        status=sa.bindparam("new_status"),
        cause=sa.bindparam("new_cause"),
        detail=sa.bindparam("new_detail"),
        invocation_id=sa.bindparam("new_invocation_id"),
        flow_invocation_id=sa.bindparam("new_flow_invocation_id"),
        updated_at=sa.bindparam("now"),
        attempts=sa.bindparam("new_attempts"),
        due_at=sa.func.coalesce(sa.bindparam("retry_at", type_=UtcDateTime()), event_deliveries.c.due_at),
    )
)


def settle_batches(conn: Connection, batches: list[list[Settlement]]) -> list[Settled]:
    """A `store.writer` batch apply: each queued dispatcher batch settled in the shared transaction."""
    return [settle(conn, batch) for batch in batches]


def settle(conn: Connection, settlements: list[Settlement]) -> Settled:
    """Record what the dispatcher decided for the deliveries that are still pending, under the same trigger.

    A delivery another process settled, attempted or holds is left alone;
    one whose trigger changed since its mapping ran is left pending and
    mapped again, as is a live run mapped for a flow version published
    before another; one whose trigger was disabled or removed meanwhile is
    skipped, as is a live run of an event from before the trigger took
    effect. A retry counts as settled: its row was written.
    """
    if not settlements:
        return Settled(0, 0)
    claimed = {
        row.id: _Claim(*row[1:])
        for row in conn.execute(_CLAIM, {"ids": [settlement.delivery_id for settlement in settlements]})
    }
    published = _publications(conn, claimed.values())
    now = utcnow()
    decided: list[Settlement] = []
    accepting: list[Settlement] = []
    stale = 0
    for settlement in settlements:
        claim = claimed.get(settlement.delivery_id)
        if claim is None or claim.attempts != settlement.attempts:
            continue
        attempts, mode, revision = claim.attempts, claim.mode, claim.revision
        publication = published.get(claim.flow_id or "")
        if mode is None:
            decided.append(Settlement(settlement.delivery_id, None, SKIPPED, "trigger_deleted", attempts=attempts))
        elif mode == "disabled":
            decided.append(Settlement(settlement.delivery_id, revision, SKIPPED, "trigger_disabled", attempts=attempts))
        elif revision != settlement.trigger_revision:
            stale += 1
        elif settlement.accept is None:
            decided.append(settlement)
        elif (refusal := claim.live_refusal(settlement.accept, publication)) is not None:
            decided.append(replace(settlement, status=refusal[0], cause=refusal[1], accept=None))
        elif settlement.accept.mode == "live" and _version(publication) != settlement.flow_version:
            stale += 1  # its variables are another version's
        else:
            accepting.append(settlement)
    verdicts = accept_batch(conn, [settlement.accept for settlement in accepting if settlement.accept is not None])
    rows = [_row(settlement, None, now) for settlement in decided]
    rows += [_row(settlement, verdict, now) for settlement, verdict in zip(accepting, verdicts, strict=True)]
    if rows:
        conn.execute(_SETTLE, rows)
    accepted = sum(verdict.verdict == "accepted" for verdict in verdicts)
    return Settled(len(rows), accepted, stale)


def _publications(conn: Connection, claims: Iterable[_Claim]) -> dict[str, Publication]:
    """The publication of each flow of a live trigger claimed (one never published is left out), as
    store.bulk_tasks.existing_members and store.invocations read it, and held until this transaction ends.

    On PostgreSQL a publication takes its time before it commits, so an event recorded meanwhile (after
    that time: the trigger's) could be settled before it commits, `flow_not_published`, and be started by
    nobody; and one committing between this read and the acceptance would start its version with the
    variables mapped for the one before. So the flows' rows are share-locked first: a publication in
    progress (it locks the row before it takes its time: store.flows.publish) is waited for, and the next
    statement sees it; a publication after that waits for this transaction. SQLite has one writer: none
    can be in progress.
    """
    live = sorted({claim.flow_id for claim in claims if claim.mode == "live" and claim.flow_id is not None})
    if not live:
        return {}
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(flows.c.id).where(flows.c.id.in_(live)).with_for_update(read=True))
    return publications(conn, live)


def _version(publication: Publication | None) -> int | None:
    return None if publication is None else publication.version


def _row(settlement: Settlement, acceptance: Acceptance | None, now: datetime) -> dict[str, Any]:
    status, cause, invocation_id = settlement.status, settlement.cause, None
    if acceptance is not None:
        status, cause = _VERDICTS[acceptance.verdict]
        if acceptance.invocation is not None:
            invocation_id = acceptance.invocation.id
    key = settlement.accept.flow_invocation_id if settlement.accept is not None else None
    return {
        "delivery_id": settlement.delivery_id,
        "new_status": status,
        "new_cause": cause,
        "new_detail": settlement.detail,
        "new_invocation_id": invocation_id,
        "new_flow_invocation_id": key,
        "now": now,
        "new_attempts": settlement.attempts + 1,
        "retry_at": settlement.retry_at,  # None: the due time stays as it was
    }


def set_aside(conn: Connection, delivery_id: str, reason: str) -> None:
    """Mark a delivery that fails whenever it is settled as failed, so it stops holding up the rest."""
    values = {"status": FAILED, "cause": "internal_error", "detail": {"error": reason}, "updated_at": utcnow()}
    statement = sa.update(event_deliveries).where(
        event_deliveries.c.id == delivery_id, event_deliveries.c.status == PENDING
    )
    conn.execute(statement.values(**values))
