"""Triggers: how the outside world starts a flow.

Webhook, event and segment triggers are rows (an event trigger has no hook:
`hook_id` is None and `event_name` says which event it listens for; a
segment trigger is an event trigger on `segment-entered` or `segment-exited`
that fires only for its `segment_id`, see store.event_deliveries). Every
flow also has exactly one API trigger (SPEC §5: it cannot be removed), which
is derived from the flow instead of stored: it exists exactly as long as the
flow and nothing about it can change, so a row would only be one more thing
to keep in step with the flow (and a migration to add one to every existing
flow). Its id is `api_` + the flow id.
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.flows import FLOWS_WITH_PUBLISHED, PUBLISHED, DeclaredVariables, refuse_archived
from store.ids import new_hook_id, new_id
from store.segment_locks import hold_entries
from store.tables import UtcDateTime, event_deliveries, flows, request_log, samples, triggers

MODES = ("test", "live", "disabled")
API_TRIGGER_PREFIX = "api_"  # stored trigger ids are `trg_…`: the two never collide
#: Where a page of the environment's triggers ends: its last trigger's creation time and id.
Position = tuple[datetime, str]


@dataclass(frozen=True)
class Trigger:
    id: str
    environment_id: str
    flow_id: str
    type: str
    hook_id: str | None
    mode: str
    mapping: dict[str, Any]
    verification: dict[str, Any] | None
    allowed_ips: list[str]
    capture_armed: bool  # as of its reading: an arming past `capture_expires_at` is not (see `_as_read`)
    revision: int
    created_at: datetime
    updated_at: datetime
    event_name: str | None = None  # an event trigger's event
    segment_id: str | None = None  # a segment trigger's segment
    capture_expires_at: datetime | None = None  # when an armed capture lapses; None when not armed


@dataclass(frozen=True)
class ApiTrigger:
    """A flow's API trigger: `POST /v1/{env}/action-flow/{flowId}/start` and `…/test`.

    It has no hook (`hook_id` is None), hence no capture, samples or request
    log: calls to it are answered directly and show up as invocations.
    """

    environment_id: str
    flow_id: str
    created_at: datetime  # the flow's: the trigger comes with it

    type: ClassVar[str] = "api"
    hook_id: ClassVar[None] = None  # code that takes any trigger (replay) checks it for a hook

    @property
    def id(self) -> str:
        return api_trigger_id(self.flow_id)


def took_effect(first_published: datetime, created_at: datetime) -> datetime:
    """When a trigger took effect: its flow's first publication, or its own creation if that was later. An
    event recorded before never starts a live run of it (store.event_dispatch), and a segment trigger's
    members from before are its existing members (store.bulk_tasks)."""
    return max(first_published, created_at)


def api_trigger_id(flow_id: str) -> str:
    return f"{API_TRIGGER_PREFIX}{flow_id}"


@dataclass(frozen=True)
class Revisions:
    """What a cached hook configuration depends on; any change means reload."""

    trigger: int
    flow_draft: int
    flow_published: int | None


@dataclass(frozen=True)
class HookTarget:
    """A webhook trigger with what its requests need from the flow.

    `variables` are the flow variables the mapping applies: the published
    version's for a live trigger (the draft's until the first publish), the
    draft's otherwise.
    """

    trigger: Trigger
    variables: list[dict[str, Any]]
    published_version: int | None
    draft_revision: int

    @property
    def revisions(self) -> Revisions:
        return Revisions(self.trigger.revision, self.draft_revision, self.published_version)


def insert_trigger(
    conn: Connection,
    environment_id: str,
    flow_id: str,
    *,
    kind: str,
    mode: str,
    mapping: dict[str, Any],
    verification: dict[str, Any] | None = None,
    allowed_ips: list[str] | None = None,
    event_name: str | None = None,
    segment_id: str | None = None,
) -> Trigger:
    """A trigger of `kind` (its `type`). One listening for `event_name` (an event or segment trigger) has no
    hook; any other gets a new hook id, its URL key (a webhook's `/hooks/{hookId}`, an SFMC activity's, a
    Marketo service's). FlowArchived for an archived flow: it gains no new way to be started.

    A segment trigger is made once the entries in flight into its segment are committed, and holds back the
    next until it is (store.segment_locks): an entry timed before its creation is an existing member, and one
    timed after sees it and fires it; none is neither."""
    refuse_archived(conn, environment_id, flow_id)
    if segment_id is not None:
        hold_entries(conn, environment_id, segment_id)
    now = utcnow()
    trigger = Trigger(
        id=new_id("trg"),
        environment_id=environment_id,
        flow_id=flow_id,
        type=kind,
        hook_id=new_hook_id() if event_name is None else None,
        mode=mode,
        mapping=mapping,
        verification=verification,
        allowed_ips=allowed_ips or [],
        capture_armed=False,
        revision=1,
        created_at=now,
        updated_at=now,
        event_name=event_name,
        segment_id=segment_id,
    )
    conn.execute(sa.insert(triggers).values(**trigger.__dict__))
    return trigger


def _lapsed(armed: bool, expires_at: datetime | None) -> bool:
    """Whether a stored arming has lapsed (one without an expiry predates expiries: store.migrations)."""
    return armed and (expires_at is None or expires_at <= utcnow())


def _as_read(row: Mapping[Any, Any]) -> Trigger:
    """A trigger row as of now. A capture armed past its expiry is not armed, so the next request runs as
    any other; and the lapse is a change, as a disarming is: the trigger reads at the next revision, updated
    when it lapsed, so that a revision (the `ETag`) names one representation, and hook configurations cached
    while it was armed are read again (`hook_revisions`). Nothing writes the lapse on time (no background
    job): the row says armed until a change writes over it (`update_trigger`, or a request that finds it
    lapsed, store.samples.capture_batch), which stores what was read."""
    trigger = Trigger(**row)
    if _lapsed(trigger.capture_armed, trigger.capture_expires_at):
        lapsed_at = trigger.capture_expires_at or trigger.updated_at
        return replace(
            trigger, capture_armed=False, capture_expires_at=None, revision=trigger.revision + 1, updated_at=lapsed_at
        )
    return trigger


def get_trigger(conn: Connection, environment_id: str, trigger_id: str) -> Trigger | ApiTrigger | None:
    """Any trigger of the environment: a stored one (webhook or event), or the API trigger of one of its flows."""
    if trigger_id.startswith(API_TRIGGER_PREFIX):
        return _api_trigger(conn, environment_id, trigger_id.removeprefix(API_TRIGGER_PREFIX))
    return _stored(conn, environment_id, trigger_id)


def _stored(conn: Connection, environment_id: str, trigger_id: str) -> Trigger | None:
    row = _row(conn, environment_id, trigger_id)
    return _as_read(row) if row else None


def _row(conn: Connection, environment_id: str, trigger_id: str) -> Mapping[Any, Any] | None:
    query = sa.select(triggers).where(triggers.c.id == trigger_id, triggers.c.environment_id == environment_id)
    row = conn.execute(query).first()
    return row._mapping if row else None


def _api_trigger(conn: Connection, environment_id: str, flow_id: str) -> ApiTrigger | None:
    query = sa.select(flows.c.created_at).where(flows.c.id == flow_id, flows.c.environment_id == environment_id)
    created_at = conn.execute(query).scalar_one_or_none()
    return None if created_at is None else ApiTrigger(environment_id, flow_id, created_at)


def list_triggers(conn: Connection, environment_id: str, flow_id: str) -> list[Trigger | ApiTrigger] | None:
    """The flow's API trigger, then its stored triggers (webhook and event) oldest first; None if there is no
    such flow."""
    api_trigger = _api_trigger(conn, environment_id, flow_id)
    if api_trigger is None:
        return None
    query = (
        sa.select(triggers)
        .where(triggers.c.environment_id == environment_id, triggers.c.flow_id == flow_id)
        .order_by(triggers.c.created_at, triggers.c.id)
    )
    return [api_trigger, *(_as_read(row._mapping) for row in conn.execute(query))]


def list_environment_triggers(
    conn: Connection,
    environment_id: str,
    *,
    kind: str | None = None,
    mode: str | None = None,
    flow_id: str | None = None,
    limit: int,
    after: Position | None = None,
) -> tuple[list[Trigger | ApiTrigger], Position | None] | None:
    """A page of the environment's triggers, its flows' API triggers among them, newest first (by creation
    time, then id), and where the next page starts (None at the end); None if there is no flow `flow_id`.

    `kind` is a `type`; an API trigger has no mode, so `mode` leaves them out. The stored triggers and the
    flows (each flow's API trigger, created with it) are two index ranges, merged: of two equal times, the
    stored trigger comes first, as `trg_` sorts after `api_`.
    """
    if flow_id is not None and _api_trigger(conn, environment_id, flow_id) is None:
        return None
    stored: list[Trigger | ApiTrigger] = []
    derived: list[Trigger | ApiTrigger] = []
    if kind != "api":
        stored += _stored_page(conn, environment_id, kind, mode, flow_id, limit, after)
    if kind in (None, "api") and mode is None:
        derived += _api_page(conn, environment_id, flow_id, limit, after)
    newest = list(heapq.merge(stored, derived, key=_newest, reverse=True))[: limit + 1]
    if len(newest) > limit:
        last = newest[limit - 1]
        return newest[:limit], (last.created_at, last.id)
    return newest, None


def _newest(trigger: Trigger | ApiTrigger) -> tuple[datetime, bool]:
    """The merge's order, descending: by time; of one time, a stored trigger before an API trigger."""
    return trigger.created_at, isinstance(trigger, Trigger)


def _stored_page(
    conn: Connection,
    environment_id: str,
    kind: str | None,
    mode: str | None,
    flow_id: str | None,
    limit: int,
    after: Position | None,
) -> list[Trigger]:
    table = triggers.c
    query = sa.select(triggers).where(table.environment_id == environment_id)
    for column, value in ((table.type, kind), (table.mode, mode), (table.flow_id, flow_id)):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        query = query.where(_before(table.created_at, table.id, after))
    query = query.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)
    return [_as_read(row._mapping) for row in conn.execute(query)]


def _api_page(
    conn: Connection, environment_id: str, flow_id: str | None, limit: int, after: Position | None
) -> list[ApiTrigger]:
    """The API triggers of the page, as their flows: `api_` + a flow's id orders as the flow's id does."""
    table = flows.c
    query = sa.select(table.id, table.created_at).where(table.environment_id == environment_id)
    if flow_id is not None:
        query = query.where(table.id == flow_id)
    if after is not None:
        at, last_id = after
        if last_id.startswith(API_TRIGGER_PREFIX):
            query = query.where(_before(table.created_at, table.id, (at, last_id.removeprefix(API_TRIGGER_PREFIX))))
        else:  # a stored trigger's: an API trigger of its time comes after it
            query = query.where(table.created_at <= at)
    query = query.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)
    return [ApiTrigger(environment_id, row.id, row.created_at) for row in conn.execute(query)]


def _before(
    created_at: sa.ColumnElement[datetime], row_id: sa.ColumnElement[str], at: Position
) -> sa.ColumnElement[bool]:
    """Rows after `at` newest first: a row value comparison, which both stores take as an index range."""
    return sa.tuple_(created_at, row_id) < sa.tuple_(sa.literal(at[0], UtcDateTime()), sa.literal(at[1], sa.Text()))


class RevisionMismatch(Exception):
    """The trigger is no longer at the revision a change was made against (an `If-Match` that does not hold)."""

    def __init__(self, current: Trigger) -> None:
        super().__init__(f"trigger {current.id} is at revision {current.revision}")
        self.current = current


def update_trigger(
    conn: Connection,
    environment_id: str,
    trigger_id: str,
    changes: dict[str, Any],
    *,
    if_revision_in: Container[int] | None = None,
) -> Trigger | None:
    """Apply column changes and bump the revision (cached configs key on it).

    With `if_revision_in`, only if the trigger's revision is one of those, else RevisionMismatch with the
    trigger as it is. The UPDATE checks that the stored revision is still the one read, so a change committed
    by another process between the read and the write is caught (PostgreSQL re-reads the row it waited for):
    then the trigger is read again, and without `if_revision_in` the change is applied on top of it, so two
    concurrent edits never both write the same revision (a worker's cached config would keep the first).
    The capture is written as read: a lapse read at a revision the row does not have yet (`_as_read`).
    """
    statement = sa.update(triggers).where(triggers.c.id == trigger_id)
    while True:
        row = _row(conn, environment_id, trigger_id)
        if row is None:  # never there, or deleted meanwhile
            return None
        current = _as_read(row)
        if if_revision_in is not None and current.revision not in if_revision_in:
            raise RevisionMismatch(current)
        updated = replace(current, **changes, revision=current.revision + 1, updated_at=utcnow())
        written = (*changes, "capture_armed", "capture_expires_at", "revision", "updated_at")
        values = {name: getattr(updated, name) for name in written}
        if conn.execute(statement.where(triggers.c.revision == row["revision"]).values(**values)).rowcount:
            return updated


def set_capture(conn: Connection, environment_id: str, trigger_id: str, expires_at: datetime | None) -> Trigger | None:
    """Arm capture until `expires_at`, or disarm it (None); None if there is no such trigger."""
    changes = {"capture_armed": expires_at is not None, "capture_expires_at": expires_at}
    return update_trigger(conn, environment_id, trigger_id, changes)


def delete_trigger(conn: Connection, environment_id: str, trigger_id: str) -> bool:
    """Remove the trigger with its samples, request log and event deliveries (invocations stay): a pending
    delivery of a removed trigger has nothing left to run."""
    statement = sa.delete(triggers).where(triggers.c.id == trigger_id, triggers.c.environment_id == environment_id)
    if conn.execute(statement).rowcount == 0:
        return False
    for table in (samples, request_log, event_deliveries):
        conn.execute(sa.delete(table).where(table.c.trigger_id == trigger_id))
    return True


def release_segment(conn: Connection, environment_id: str, segment_id: str) -> list[str]:
    """The segment triggers that keep a segment from being deleted: those of flows not archived. When there
    are none, the archived flows' triggers on it are deleted, so that they go with the segment (an archived
    flow starts nothing, and the seed deletes the segment once its outreach is over)."""
    query = (
        sa.select(triggers.c.id, flows.c.archived_at)
        .join(flows, flows.c.id == triggers.c.flow_id)
        .where(triggers.c.segment_id == segment_id)
        .order_by(triggers.c.id)
    )
    found = conn.execute(query).all()
    in_use = [row.id for row in found if row.archived_at is None]
    if not in_use:
        for row in found:
            delete_trigger(conn, environment_id, row.id)
    return in_use


@dataclass(frozen=True)
class TriggerWithFlow:
    """A stored trigger with its flow's declared variables, revisions and archive state, as one read saw them."""

    trigger: Trigger
    declared: DeclaredVariables
    draft_revision: int
    flow_archived: bool  # what the trigger would start is refused (store.invocations); no use mapping for it

    @property
    def published_version(self) -> int | None:
        return self.declared.published_version

    def variables(self, *, live: bool) -> list[dict[str, Any]]:
        """The flow variables the trigger's mapping applies for a live or a test run."""
        return self.declared.for_run(live=live)


def triggers_with_flows(conn: Connection, where: sa.ColumnElement[bool]) -> list[TriggerWithFlow]:
    query = (
        sa.select(
            triggers,
            flows.c.draft,
            flows.c.draft_revision,
            flows.c.published_version,
            flows.c.archived_at.label("flow_archived_at"),
            PUBLISHED.c.definition.label("published_definition"),
        )
        .select_from(triggers.join(FLOWS_WITH_PUBLISHED, flows.c.id == triggers.c.flow_id))
        .where(where)
    )
    found = []
    for row in conn.execute(query):
        values = dict(row._mapping)
        declared = DeclaredVariables.of(
            values.pop("draft"), values.pop("published_definition"), values.pop("published_version")
        )
        draft_revision = values.pop("draft_revision")
        archived = values.pop("flow_archived_at") is not None
        found.append(TriggerWithFlow(_as_read(values), declared, draft_revision, archived))
    return found


def load_hook_target(conn: Connection, hook_id: str) -> HookTarget | None:
    """A webhook trigger by its hook id: another kind's key (an SFMC activity's) is no webhook URL."""
    found = triggers_with_flows(conn, sa.and_(triggers.c.hook_id == hook_id, triggers.c.type == "webhook"))
    if not found:
        return None
    (target,) = found
    return HookTarget(
        trigger=target.trigger,
        variables=target.variables(live=target.trigger.mode == "live"),
        published_version=target.published_version,
        draft_revision=target.draft_revision,
    )


def load_keyed_trigger(conn: Connection, kind: str, hook_id: str) -> TriggerWithFlow | None:
    """A trigger of `kind` reached by its URL key (its `hook_id`), with its flow; None if there is none.

    A key holding NUL cannot have been issued, and PostgreSQL could not even compare it: it is not looked up.
    """
    if "\x00" in hook_id:
        return None
    found = triggers_with_flows(conn, sa.and_(triggers.c.hook_id == hook_id, triggers.c.type == kind))
    return found[0] if found else None


def hook_revisions(conn: Connection, hook_id: str) -> Revisions | None:
    """A cheap staleness check for cached hook configurations: the revisions as read (`_as_read`), so that one
    cached while capture was armed is read again once the arming lapses."""
    table = triggers.c
    query = (
        sa.select(
            table.revision,
            table.capture_armed,
            table.capture_expires_at,
            flows.c.draft_revision,
            flows.c.published_version,
        )
        .join(flows, flows.c.id == table.flow_id)
        .where(table.hook_id == hook_id)
    )
    row = conn.execute(query).first()
    if row is None:
        return None
    lapse = 1 if _lapsed(row.capture_armed, row.capture_expires_at) else 0
    return Revisions(row.revision + lapse, row.draft_revision, row.published_version)
