"""Segments and their members: the segments themselves, and every change of membership with its event.

A segment holds the customers (profiles, store.customers) its rules match
(flows.segment_rules). Membership is decided in the transaction of whatever
may change it: a profile written or deleted, a custom event stored (only for
segments that count that event), a segment created or edited (all the
environment's customers, a chunk per transaction). Each entry and exit is a
`segment-entered` / `segment-exited` analytics event (live, no flow,
properties `{segmentId, segmentName}`) written with the change and handed to
store.event_deliveries.enqueue in the same transaction, so a segment trigger
never misses one.

A create or an edit's evaluation is recorded on the segment row: each
chunk's transaction locks the row (FOR UPDATE on PostgreSQL), checks that the
evaluation is still where its evaluator left it, and moves it on with the
membership changes it commits. So an evaluation cut short (the process died,
the request was cancelled) resumes at the next chunk, no customer twice and
none skipped: whoever evaluates holds a lease, renewed by every chunk, and an
evaluation whose lease ran out is finished in the background
(flows.segment_evaluation).

A change is what the store did, not what was decided: an entry is a member
row inserted (a row already there inserts nothing), an exit a row deleted,
and the customers being evaluated are locked first (FOR UPDATE on
PostgreSQL), so two processes deciding the same change emit it once. Deleting
a segment removes its members without exit events (docs/customers.md).

A writer that evaluates customers against the rules (a profile written,
events stored) holds the environment's rules (`hold_rules`) from before it
locks a customer until it commits, and creating, editing or deleting a
segment waits for every such writer in flight: on PostgreSQL a chunk cannot
see a writer's uncommitted customer or event, so a writer must never decide
by rules that changed under it. The lock order is rules, then segment row,
then customers (in `seq` order). The same locks order a segment trigger's
creation and a start of its existing members against the entries in flight
(store.segment_locks): each entry is on one side of the instant the trigger
took effect, committed before the other side looks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flows.segment_rules import event_names, matches
from store.analytics import flowless_event_row
from store.clock import utcnow
from store.event_deliveries import enqueue
from store.idempotent import insert_new, insert_or_skip
from store.ids import new_id
from store.segment_locks import rules_lock
from store.tables import analytics_events, customers, segment_members, segments
from store.triggers import release_segment

ENTERED, EXITED = "segment-entered", "segment-exited"
MAX_SEGMENTS = 200  # per environment: a profile write evaluates every one of them in its transaction
CHUNK = 500  # customers evaluated per transaction when a segment is created or edited
LEASE = timedelta(seconds=30)  # an evaluation nobody moved on for this long is finished by someone else

Attributes = dict[str, Any]


@dataclass(frozen=True)
class Evaluation:
    """How far the evaluation of the segment's revision `revision` over every customer got, and what it did."""

    revision: int
    complete: bool
    after: int | None  # the last customer (seq) evaluated: the next chunk starts after it
    # Customers examined, entered and exited; None for a segment evaluated before they were counted.
    examined: int | None
    entered: int | None
    exited: int | None


@dataclass(frozen=True)
class Segment:
    id: str
    environment_id: str
    name: str
    rules: dict[str, Any]
    revision: int
    created_at: datetime
    updated_at: datetime
    evaluation: Evaluation


@dataclass(frozen=True)
class Changes:
    """What an evaluation changed: entries, exits, and the trigger deliveries their events fired."""

    entered: int = 0
    exited: int = 0
    deliveries: int = 0

    def __add__(self, other: Changes) -> Changes:
        return Changes(self.entered + other.entered, self.exited + other.exited, self.deliveries + other.deliveries)


@dataclass(frozen=True)
class Chunk:
    """One transaction's share of evaluating a segment over its environment's customers."""

    # Where the evaluation stands after it; None when the segment was edited (or deleted) since: the newer
    # revision's evaluation takes over.
    evaluation: Evaluation | None
    changes: Changes
    advanced: bool  # False: nothing was evaluated (another evaluator had moved on, or it was done or superseded)


@dataclass(frozen=True)
class Member:
    seq: int  # the customer's: members are listed in the order customers were created
    user_id: str
    entered_at: datetime


class TooManySegments(Exception):
    """The environment has MAX_SEGMENTS segments already."""


class SegmentInUse(Exception):
    """Triggers start flows on the segment's entries or exits; they must go first."""

    def __init__(self, trigger_ids: list[str]) -> None:
        super().__init__(f"segment triggers {trigger_ids} use the segment")
        self.trigger_ids = trigger_ids


# --- the segments ---


def insert_segment(conn: Connection, environment_id: str, name: str, rules: dict[str, Any]) -> Segment:
    """A new segment with no members yet and its evaluation leased to the caller, who evaluates it
    (`evaluate_chunk`); TooManySegments past the limit."""
    rules_lock(conn, environment_id, exclusive=True)
    if len(list_segments(conn, environment_id)) >= MAX_SEGMENTS:
        raise TooManySegments(f"an environment holds at most {MAX_SEGMENTS} segments")
    now = utcnow()
    segment_id = new_id("seg")
    values = {"environment_id": environment_id, "name": name, "rules": rules, "revision": 1, "created_at": now}
    conn.execute(sa.insert(segments).values(id=segment_id, **values, **_evaluation_started(now)))
    return _segment(conn.execute(sa.select(segments).where(segments.c.id == segment_id)).one())


def get_segment(conn: Connection, environment_id: str, segment_id: str) -> Segment | None:
    query = sa.select(segments).where(segments.c.id == segment_id, segments.c.environment_id == environment_id)
    row = conn.execute(query).first()
    return _segment(row) if row else None


def list_segments(conn: Connection, environment_id: str) -> list[Segment]:
    """Every segment of the environment, oldest first (at most MAX_SEGMENTS)."""
    query = (
        sa.select(segments)
        .where(segments.c.environment_id == environment_id)
        .order_by(segments.c.created_at, segments.c.id)
    )
    return [_segment(row) for row in conn.execute(query)]


def update_segment(
    conn: Connection, environment_id: str, segment_id: str, name: str, rules: dict[str, Any]
) -> Segment | None:
    """Replace the name and rules and bump the revision, which starts its evaluation afresh (leased to the
    caller); members stay until `evaluate_chunk` re-evaluates them. The row is locked first, so that two
    edits at once make two revisions."""
    rules_lock(conn, environment_id, exclusive=True)
    current = _locked_segment(conn, segment_id)
    if current is None or current.environment_id != environment_id:
        return None
    now = utcnow()
    values = {"name": name, "rules": rules, "revision": current.revision + 1, **_evaluation_started(now)}
    conn.execute(sa.update(segments).where(segments.c.id == segment_id).values(**values))
    return get_segment(conn, environment_id, segment_id)


def delete_segment(conn: Connection, environment_id: str, segment_id: str) -> bool:
    """Remove the segment and its members (no exit events); SegmentInUse while triggers name it. The row is
    locked first, as a chunk locks it: a chunk in flight commits its members before they are removed."""
    rules_lock(conn, environment_id, exclusive=True)
    found = _locked_segment(conn, segment_id)
    if found is None or found.environment_id != environment_id:
        return False
    users = release_segment(conn, environment_id, segment_id)  # an archived flow's triggers go with it
    if users:
        raise SegmentInUse(users)
    conn.execute(sa.delete(segment_members).where(segment_members.c.segment_id == segment_id))
    conn.execute(sa.delete(segments).where(segments.c.id == segment_id))
    return True


def member_counts(conn: Connection, segment_ids: Iterable[str]) -> dict[str, int]:
    """How many customers each segment holds now (0 for one with none)."""
    wanted = list(segment_ids)
    query = (
        sa.select(segment_members.c.segment_id, sa.func.count())
        .where(segment_members.c.segment_id.in_(wanted))
        .group_by(segment_members.c.segment_id)
    )
    return {segment_id: 0 for segment_id in wanted} | {row[0]: row[1] for row in conn.execute(query)}


def list_members(
    conn: Connection, environment_id: str, segment_id: str, *, limit: int, after: int | None
) -> tuple[list[Member], int | None]:
    """A page of the segment's members in the order the customers were created, and the next page's cursor."""
    query = (
        sa.select(customers.c.seq, segment_members.c.user_id, segment_members.c.entered_at)
        .join(
            customers,
            sa.and_(
                customers.c.environment_id == segment_members.c.environment_id,
                customers.c.user_id == segment_members.c.user_id,
            ),
        )
        .where(segment_members.c.segment_id == segment_id, segment_members.c.environment_id == environment_id)
    )
    if after is not None:
        query = query.where(customers.c.seq > after)
    found = [Member(*row) for row in conn.execute(query.order_by(customers.c.seq).limit(limit + 1))]
    if len(found) > limit:
        return found[:limit], found[limit - 1].seq
    return found, None


def memberships(conn: Connection, environment_id: str, user_ids: Iterable[str]) -> dict[str, list[str]]:
    """user id -> the ids of the segments that customer is in, sorted ([] for none)."""
    wanted = list(user_ids)
    query = (
        sa.select(segment_members.c.user_id, segment_members.c.segment_id)
        .where(segment_members.c.environment_id == environment_id, segment_members.c.user_id.in_(wanted))
        .order_by(segment_members.c.segment_id)
    )
    found: dict[str, list[str]] = {user_id: [] for user_id in wanted}
    for user_id, segment_id in conn.execute(query):
        found[user_id].append(segment_id)
    return found


# --- membership ---


def evaluate_chunk(conn: Connection, segment_id: str, revision: int, after: int | None, *, limit: int) -> Chunk:
    """Evaluate the segment's revision `revision` for the next `limit` customers after `after`, where its
    evaluator left the evaluation, and move the evaluation on (and its lease) in this transaction.

    The segment row is locked first: of two evaluators at the same place,
    the second finds the evaluation moved on and does nothing (`advanced`
    False, with where it stands now). The seed's semantics for an edit: a
    member who no longer matches exits, one who still matches stays and
    emits nothing, a customer who now matches enters.
    """
    segment = _locked_segment(conn, segment_id)
    if segment is None or segment.revision != revision:
        return Chunk(None, Changes(), False)
    state = segment.evaluation
    if state.complete or state.after != after:
        return Chunk(state, Changes(), False)
    query = sa.select(customers.c.seq, customers.c.user_id, customers.c.attributes).where(
        customers.c.environment_id == segment.environment_id
    )
    if after is not None:
        query = query.where(customers.c.seq > after)
    rows = conn.execute(query.order_by(customers.c.seq).limit(limit).with_for_update()).all()
    changes = reconcile(conn, segment.environment_id, [segment], {row.user_id: row.attributes for row in rows})
    done = len(rows) < limit
    evaluation = Evaluation(
        revision,
        done,
        rows[-1].seq if rows else after,
        (state.examined or 0) + len(rows),  # counted from 0 since the revision was made: never None here
        (state.entered or 0) + changes.entered,
        (state.exited or 0) + changes.exited,
    )
    values = {
        "evaluation_after": evaluation.after,
        "evaluation_lease": None if done else utcnow() + LEASE,
        "evaluation_examined": evaluation.examined,
        "evaluation_entered": evaluation.entered,
        "evaluation_exited": evaluation.exited,
    }
    if done:
        values["evaluated_revision"] = revision
    conn.execute(sa.update(segments).where(segments.c.id == segment_id).values(**values))
    return Chunk(evaluation, changes, True)


def stale_evaluation(conn: Connection, now: datetime) -> Segment | None:
    """The unfinished evaluation whose lease ran out longest ago (nobody is moving it on), if any."""
    query = (
        sa.select(segments)
        .where(segments.c.evaluation_lease < now, segments.c.evaluated_revision < segments.c.revision)
        .order_by(segments.c.evaluation_lease)
        .limit(1)
    )
    row = conn.execute(query).first()
    return _segment(row) if row else None


def postpone_evaluation(conn: Connection, segment_id: str, revision: int, after: int | None, until: datetime) -> None:
    """Nobody is to take the evaluation over before `until` (its chunk after `after` failed), unless it has
    moved on since or the segment was edited."""
    where = (
        segments.c.id == segment_id,
        segments.c.revision == revision,
        segments.c.evaluated_revision < revision,
        segments.c.evaluation_after.is_(None) if after is None else segments.c.evaluation_after == after,
    )
    conn.execute(sa.update(segments).where(*where).values(evaluation_lease=until))


def hold_rules(conn: Connection, environment_id: str) -> None:
    """Keep the environment's segments as they are until this transaction ends (a segment created, edited or
    deleted meanwhile waits for it), for a writer about to evaluate customers against them: call it before
    locking any customer (the lock order is rules, segment row, customers).

    PostgreSQL: a transaction-level advisory lock on the environment, shared
    by writers and exclusive for a change of segments; a lock per segment row
    could not make a new segment wait, and would write every row it locks.
    SQLite has one writer at a time anyway.
    """
    rules_lock(conn, environment_id, exclusive=False)


def evaluate_customer(conn: Connection, environment_id: str, user_id: str, attributes: Attributes) -> Changes:
    """A profile just written (and so locked) against every segment of its environment; the caller has held
    the rules (`hold_rules`) since before it locked the profile."""
    return reconcile(conn, environment_id, list_segments(conn, environment_id), {user_id: attributes})


def events_recorded(conn: Connection, events: Sequence[tuple[str, str, str]]) -> Changes:
    """Custom events just stored, as (environment, user, event name): their customers against the segments
    that count those events. An environment without such segments costs two queries.

    The caller has held the rules (`hold_rules`) of every environment of these events since before it wrote
    them, whatever their names: a segment created or edited meanwhile could count any of them, and its chunks
    cannot see these events before they commit."""
    names: dict[str, set[str]] = defaultdict(set)
    users: dict[str, set[str]] = defaultdict(set)
    for environment_id, user_id, name in events:
        names[environment_id].add(name)
        users[environment_id].add(user_id)
    changes = Changes()
    for environment_id, counted in sorted(names.items()):
        concerned = [s for s in list_segments(conn, environment_id) if event_names(s.rules) & counted]
        if concerned:
            found = _locked_customers(conn, environment_id, users[environment_id])
            changes += reconcile(conn, environment_id, concerned, found)
    return changes


def customer_removed(conn: Connection, environment_id: str, user_id: str) -> Changes:
    """A deleted profile exits every segment it was in, each exit with its event (a member row of a segment
    deleted meanwhile goes without one, as that segment's members did)."""
    statement = (
        sa.delete(segment_members)
        .where(segment_members.c.environment_id == environment_id, segment_members.c.user_id == user_id)
        .returning(segment_members.c.segment_id)
    )
    left = set(conn.execute(statement).scalars())
    names = _names(conn, left)
    exited = [(segment_id, names[segment_id], user_id) for segment_id in sorted(left) if segment_id in names]
    return _emit(conn, environment_id, [], exited, utcnow())


def reconcile(
    conn: Connection, environment_id: str, evaluated: Sequence[Segment], profiles: Mapping[str, Attributes]
) -> Changes:
    """Make each segment's membership of each customer (user id -> attributes) what its rules say."""
    if not evaluated or not profiles:
        return Changes()
    users = list(profiles)
    counts = _event_counts(conn, environment_id, users, set().union(*(event_names(s.rules) for s in evaluated)))
    current = _members(conn, [segment.id for segment in evaluated], users)
    entering: dict[str, list[str]] = defaultdict(list)
    leaving: dict[str, list[str]] = defaultdict(list)
    for segment in evaluated:
        for user_id, attributes in profiles.items():
            belongs = matches(segment.rules, attributes, counts.get(user_id, {}))
            if belongs != ((segment.id, user_id) in current):
                (entering if belongs else leaving)[segment.id].append(user_id)
    now = utcnow()
    names = {segment.id: segment.name for segment in evaluated}
    entered = [
        (segment_id, names[segment_id], user_id)
        for segment_id, user_ids in entering.items()
        for user_id in _insert_members(conn, environment_id, segment_id, user_ids, now)
    ]
    exited = [
        (segment_id, names[segment_id], user_id)
        for segment_id, user_ids in leaving.items()
        for user_id in _delete_members(conn, segment_id, user_ids)
    ]
    return _emit(conn, environment_id, entered, exited, now)


def _segment(row: sa.Row[Any]) -> Segment:
    evaluation = Evaluation(
        row.revision,
        row.evaluated_revision == row.revision,
        row.evaluation_after,
        row.evaluation_examined,
        row.evaluation_entered,
        row.evaluation_exited,
    )
    return Segment(
        row.id, row.environment_id, row.name, row.rules, row.revision, row.created_at, row.updated_at, evaluation
    )


def _locked_segment(conn: Connection, segment_id: str) -> Segment | None:
    """The segment, locked for this transaction (FOR UPDATE on PostgreSQL; SQLite has one writer anyway)."""
    row = conn.execute(sa.select(segments).where(segments.c.id == segment_id).with_for_update()).first()
    return _segment(row) if row else None


def _evaluation_started(now: datetime) -> dict[str, Any]:
    """The columns of a revision made `now`, whose evaluation has not started and is leased to its maker."""
    return {
        "updated_at": now,
        "evaluation_after": None,
        "evaluation_lease": now + LEASE,
        "evaluation_examined": 0,
        "evaluation_entered": 0,
        "evaluation_exited": 0,
    }


def _locked_customers(conn: Connection, environment_id: str, user_ids: set[str]) -> dict[str, Attributes]:
    """The profiles of those of `user_ids` who are customers, locked for this transaction."""
    query = (
        sa.select(customers.c.user_id, customers.c.attributes)
        .where(customers.c.environment_id == environment_id, customers.c.user_id.in_(sorted(user_ids)))
        .order_by(customers.c.seq)
        .with_for_update()
    )
    return {row.user_id: row.attributes for row in conn.execute(query)}


def _event_counts(
    conn: Connection, environment_id: str, user_ids: list[str], names: set[str]
) -> dict[str, dict[str, int]]:
    """user -> event name -> how many of the user's live analytics events have that name (test events,
    `POST /events/test`, count for no segment)."""
    if not names:
        return {}
    query = (
        sa.select(analytics_events.c.end_user_id, analytics_events.c.event_name, sa.func.count())
        .where(
            analytics_events.c.environment_id == environment_id,
            analytics_events.c.end_user_id.in_(user_ids),
            analytics_events.c.event_name.in_(sorted(names)),
            analytics_events.c.event_source == "live",
        )
        .group_by(analytics_events.c.end_user_id, analytics_events.c.event_name)
    )
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for user_id, name, count in conn.execute(query):
        counts[user_id][name] = count
    return counts


def _members(conn: Connection, segment_ids: list[str], user_ids: list[str]) -> set[tuple[str, str]]:
    query = sa.select(segment_members.c.segment_id, segment_members.c.user_id).where(
        segment_members.c.segment_id.in_(segment_ids), segment_members.c.user_id.in_(user_ids)
    )
    return {(row.segment_id, row.user_id) for row in conn.execute(query)}


def _insert_members(
    conn: Connection, environment_id: str, segment_id: str, user_ids: list[str], now: datetime
) -> list[str]:
    """The users actually added (one another writer added first is not)."""
    rows = [
        {"segment_id": segment_id, "user_id": user_id, "environment_id": environment_id, "entered_at": now}
        for user_id in user_ids
    ]
    statement = insert_or_skip(conn.dialect, segment_members).values(rows).returning(segment_members.c.user_id)
    return sorted(conn.execute(statement).scalars())


def _delete_members(conn: Connection, segment_id: str, user_ids: list[str]) -> list[str]:
    """The users actually removed (one another writer removed first is not)."""
    statement = (
        sa.delete(segment_members)
        .where(segment_members.c.segment_id == segment_id, segment_members.c.user_id.in_(user_ids))
        .returning(segment_members.c.user_id)
    )
    return sorted(conn.execute(statement).scalars())


def _names(conn: Connection, segment_ids: set[str]) -> dict[str, str]:
    query = sa.select(segments.c.id, segments.c.name).where(segments.c.id.in_(sorted(segment_ids)))
    return {row.id: row.name for row in conn.execute(query)}


Change = tuple[str, str, str]  # (segment id, segment name, user id)


def _emit(conn: Connection, environment_id: str, entered: list[Change], exited: list[Change], now: datetime) -> Changes:
    """The analytics event of every exit, then of every entry, with the trigger deliveries they fire (hop 1: a segment
    changes only by a profile, a custom event or an edit, never by a flow's own events). They are recorded `now`,
    the time of the change: an entry's event at its membership's `entered_at`, so that a segment trigger and a
    start of its existing members (store.bulk_tasks) cut them at the same instant."""
    changes = [(EXITED, change) for change in exited] + [(ENTERED, change) for change in entered]
    rows = [
        flowless_event_row(
            new_id("evt"), environment_id, name, now, user_id, {"segmentId": segment_id, "segmentName": segment_name}
        )
        for name, (segment_id, segment_name, user_id) in changes
    ]
    insert_new(conn, analytics_events, rows)
    segment_ids = [segment_id for _, (segment_id, _, _) in changes]
    return Changes(len(entered), len(exited), enqueue(conn, rows, 1, now=now, segment_ids=segment_ids).total())
