"""Bulk start tasks (CSV files, manual starts) and the customer look-ups they need.

A task keeps its input (the CSV rows, or the selected user ids) and its
progress: `processed` rows, `started` invocations, and every skipped row in
a row of its own (`bulk_task_skips`: which row, a stable code and the reason
in words), so a chunk adds its skipped rows rather than rewriting a list;
a test sender's started rows that named users who are not test users are
kept so too (`bulk_task_ignored`: whom each ignored, as `/test` answers).
The runner (flows.bulk_runner) works through it a chunk at a time; `advance`
stores a chunk's invocations and skipped rows and moves the progress on in
one transaction, and only when the task is still where the chunk began, so a
crash resumes at the first row not committed and no row is started twice.

A start of a segment trigger's existing members (docs/customers.md) is not
bounded like other manual starts, so its selection is not a list in the
task's input: it is taken in one statement into `bulk_task_users`, a row per
customer, which the runner reads a chunk at a time and removes with the
chunk. Each of its runs is keyed by the membership it is for, so no
membership is started twice however often its members are started.

A CSV cell is text and is read as the attribute it is matched with (a
number cell equals a numeric attribute of equal value: `matching_customers`);
a manual start's filter is segment rules' attribute conditions, decided as
segment rules decide them (`customers_with`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flows.csv_rows import SEPARATOR, cell_number
from flows.segment_rules import Rule, matches
from store.clock import iso, utcnow
from store.flows import publications, refuse_archived
from store.ids import new_id
from store.invocations import Acceptance, AcceptRequest, accept_batch
from store.segment_locks import await_entries
from store.storable import storable
from store.tables import (
    bulk_task_ignored,
    bulk_task_skips,
    bulk_task_users,
    bulk_tasks,
    customers,
    segment_members,
    segments,
)
from store.triggers import Trigger, took_effect

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
OPEN = (PENDING, RUNNING)
MARKETO = "marketo"  # a Marketo flow step's batch of leads (flows.marketo_leads), with its callback
KINDS = ("csv", "csv-test", "manual", MARKETO)
#: The code of a row whose `flowInvocationId` had started the flow before (a Marketo lead's is a success).
ALREADY_STARTED = "already_started"
#: The user ids a test sender's row lists as ignored: a row may name thousands (`total` counts them all).
MAX_IGNORED_LISTED = 100


@dataclass(frozen=True)
class BulkTask:
    id: str
    environment_id: str
    flow_id: str | None
    kind: str
    status: str
    total: int
    processed: int
    started: int
    created_at: datetime
    updated_at: datetime
    callback: dict[str, Any] | None = None  # a Marketo task's: status, attempts, outcome (flows.marketo_callbacks)


_COLUMNS = [bulk_tasks.c[name] for name in BulkTask.__dataclass_fields__]


def create_task(
    conn: Connection,
    environment_id: str,
    flow_id: str | None,
    kind: str,
    task_input: dict[str, Any],
    total: int,
    callback: dict[str, Any] | None = None,
) -> BulkTask:
    """A new pending task; FlowArchived for an archived flow (a task of one has nothing to start)."""
    if flow_id is not None:
        refuse_archived(conn, environment_id, flow_id)
    now = utcnow()
    task = BulkTask(new_id("bulk"), environment_id, flow_id, kind, PENDING, total, 0, 0, now, now, callback)
    conn.execute(sa.insert(bulk_tasks).values(**task.__dict__, input=task_input))
    return task


def get_task(conn: Connection, environment_id: str, task_id: str) -> BulkTask | None:
    query = sa.select(*_COLUMNS).where(bulk_tasks.c.id == task_id, bulk_tasks.c.environment_id == environment_id)
    row = conn.execute(query).first()
    return BulkTask(**row._mapping) if row is not None else None


def next_open_task(conn: Connection) -> BulkTask | None:
    """The oldest task with rows left (a read: `advance` claims it)."""
    query = sa.select(*_COLUMNS).where(bulk_tasks.c.status.in_(OPEN)).order_by(bulk_tasks.c.seq).limit(1)
    row = conn.execute(query).first()
    return BulkTask(**row._mapping) if row is not None else None


def task_input(conn: Connection, task_id: str) -> dict[str, Any]:
    found: dict[str, Any] = conn.execute(sa.select(bulk_tasks.c.input).where(bulk_tasks.c.id == task_id)).scalar_one()
    return found


def due_callback(conn: Connection, now: datetime) -> BulkTask | None:
    """The oldest finished Marketo task whose callback is pending and due by `now` (a read: `claim_callback`
    claims). Due is decided here, not after reading: however many callbacks back off, a due one is found."""
    next_attempt = bulk_tasks.c.callback["nextAttemptAt"].as_string()  # ISO-8601 UTC text: ordered as times
    query = (
        sa.select(*_COLUMNS)
        .where(
            bulk_tasks.c.kind == MARKETO,
            bulk_tasks.c.status.in_((DONE, FAILED)),
            bulk_tasks.c.callback["status"].as_string() == PENDING,
            sa.or_(next_attempt.is_(None), next_attempt <= iso(now)),
        )
        .order_by(bulk_tasks.c.seq)
        .limit(1)
    )
    row = conn.execute(query).first()
    return None if row is None else BulkTask(**row._mapping)


def claim_callback(conn: Connection, task_id: str, seen: dict[str, Any], claimed: dict[str, Any]) -> bool:
    """Set the task's callback state to `claimed` if it is still `seen` (the row locked on PostgreSQL, the
    database on SQLite): of two processes due to send the same callback, one claims it."""
    query = sa.select(bulk_tasks.c.callback).where(bulk_tasks.c.id == task_id).with_for_update()
    if conn.execute(query).scalar_one_or_none() != seen:
        return False
    record_callback(conn, task_id, claimed)
    return True


def record_callback(conn: Connection, task_id: str, callback: dict[str, Any]) -> None:
    conn.execute(sa.update(bulk_tasks).where(bulk_tasks.c.id == task_id).values(callback=callback))


@dataclass(frozen=True)
class Skip:
    """A skipped row: which (`ref`), why for machines (`code`: `no_match`, `already_started`, …, stable
    whatever the wording) and in words (`reason`). `number` orders a task's skipped rows: 1, 2, …"""

    number: int
    ref: dict[str, Any]
    code: str
    reason: str


def skipped_rows(
    conn: Connection, task_id: str, *, after: int | None = None, limit: int | None = None
) -> tuple[list[Skip], int | None]:
    """The task's skipped rows in order, those after `after` and at most `limit` of them, and the number
    the next page starts after (None: no more)."""
    query = sa.select(bulk_task_skips.c.number, bulk_task_skips.c.ref, bulk_task_skips.c.code, bulk_task_skips.c.reason)
    query = query.where(bulk_task_skips.c.task_id == task_id)
    if after is not None:
        query = query.where(bulk_task_skips.c.number > after)
    query = query.order_by(bulk_task_skips.c.number)
    found = [Skip(**row._mapping) for row in conn.execute(query if limit is None else query.limit(limit + 1))]
    if limit is not None and len(found) > limit:
        return found[:limit], found[limit - 1].number
    return found, None


@dataclass(frozen=True)
class Ignored:
    """A test sender's started row that named users who are not test users: they receive nothing, as `/test`
    answers them in `ignoredUserIds`. The first MAX_IGNORED_LISTED are listed; `total` counts them all."""

    row: int
    user_ids: list[str]
    total: int


def ignored_rows(conn: Connection, task_id: str) -> list[Ignored]:
    """The task's started rows that ignored users, in row order."""
    query = (
        sa.select(bulk_task_ignored.c.row, bulk_task_ignored.c.user_ids, bulk_task_ignored.c.total)
        .where(bulk_task_ignored.c.task_id == task_id)
        .order_by(bulk_task_ignored.c.row)
    )
    return [Ignored(**row._mapping) for row in conn.execute(query)]


@dataclass(frozen=True)
class Outcome:
    """What became of one row: an invocation to accept, or the `code` and `reason` it is skipped with.
    `ref` names the row in the task's skipped rows (`{"row": 2}` or `{"userId": "u1"}`). `ignored`: a test
    sender's row's users who are not test users, reported if the row is started."""

    ref: dict[str, Any]
    accept: AcceptRequest | None = None
    code: str | None = None
    reason: str | None = None
    ignored: tuple[str, ...] = ()


@dataclass
class Chunk:
    """The outcomes of rows `offset` to `offset + len(outcomes) - 1` of a task (a chunk of zero rows with
    `failed` set ends the task as failed)."""

    task_id: str
    offset: int
    outcomes: list[Outcome] = field(default_factory=list)
    failed: bool = False


@dataclass(frozen=True)
class Advanced:
    processed: int  # rows this chunk moved the task on (0: another process had done them)
    started: int


_CLAIM = (
    sa.select(bulk_tasks.c.processed, bulk_tasks.c.total, bulk_tasks.c.started)
    .where(bulk_tasks.c.id == sa.bindparam("task_id"), bulk_tasks.c.status.in_(OPEN))
    .with_for_update(skip_locked=True)
)
_LAST_SKIP = sa.select(sa.func.max(bulk_task_skips.c.number)).where(
    bulk_task_skips.c.task_id == sa.bindparam("task_id")
)

#: A row store.invocations did not accept: its code and reason, by the verdict.
_VERDICTS = {
    "duplicate": (ALREADY_STARTED, "flowInvocationId {key!r} started this flow before; nothing new was started"),
    "conflict": ("idempotency_conflict", "flowInvocationId {key!r} was already used with another payload"),
    "flow_archived": ("flow_archived", "the flow is archived"),
    "flow_not_published": ("flow_not_published", "the flow has no published version"),
    "trigger_deleted": ("trigger_deleted", "the trigger was deleted"),
}


def advance_batches(conn: Connection, chunks: list[Chunk]) -> list[Advanced]:
    """A `store.writer` batch apply: each chunk advanced in the shared transaction."""
    return [advance(conn, chunk) for chunk in chunks]


def advance(conn: Connection, chunk: Chunk) -> Advanced:
    """Store the chunk's invocations and move its task on, if the task is still open at `chunk.offset`.

    On PostgreSQL the task row is locked (another process holding it is
    skipped), so two runners never commit the same rows.
    """
    claimed = conn.execute(_CLAIM, {"task_id": chunk.task_id}).first()
    if claimed is None or claimed.processed != chunk.offset:
        return Advanced(0, 0)
    accepting = [outcome.accept for outcome in chunk.outcomes if outcome.accept is not None]
    verdicts = iter(accept_batch(conn, accepting) if accepting else [])
    started = 0
    skipped: list[dict[str, Any]] = []
    ignored: list[dict[str, Any]] = []
    for outcome in chunk.outcomes:
        code, reason = outcome.code, outcome.reason
        if outcome.accept is not None:
            verdict: Acceptance = next(verdicts)
            if verdict.verdict == "accepted":
                started += 1
                if outcome.ignored:
                    ignored.append(_ignored(chunk.task_id, outcome))
                continue
            code, reason = _VERDICTS[verdict.verdict]
            reason = reason.format(key=outcome.accept.flow_invocation_id)
        assert code is not None and reason is not None  # an outcome without an invocation says why
        skipped.append({"ref": outcome.ref, "code": code, "reason": storable(reason)})  # may quote a lead's text
    if skipped:
        last = conn.execute(_LAST_SKIP, {"task_id": chunk.task_id}).scalar_one() or 0
        numbered = [{**skip, "task_id": chunk.task_id, "number": last + n} for n, skip in enumerate(skipped, 1)]
        conn.execute(sa.insert(bulk_task_skips), numbered)
    if ignored:
        conn.execute(sa.insert(bulk_task_ignored), ignored)
    processed = claimed.processed + len(chunk.outcomes)
    status = FAILED if chunk.failed else DONE if processed >= claimed.total else RUNNING
    done_with = bulk_task_users.c.number <= processed if status == RUNNING else sa.true()
    conn.execute(sa.delete(bulk_task_users).where(bulk_task_users.c.task_id == chunk.task_id, done_with))
    values = {"processed": processed, "started": claimed.started + started, "status": status, "updated_at": utcnow()}
    conn.execute(sa.update(bulk_tasks).where(bulk_tasks.c.id == chunk.task_id).values(**values))
    return Advanced(len(chunk.outcomes), started)


def _ignored(task_id: str, outcome: Outcome) -> dict[str, Any]:
    listed = list(outcome.ignored[:MAX_IGNORED_LISTED])
    return {"task_id": task_id, "row": outcome.ref["row"], "user_ids": listed, "total": len(outcome.ignored)}


#: An attribute's kind as a cell is read for it: "string", "number", "boolean", or a list's item kinds.
Kind = str | tuple[str, ...]
_SCALARS: tuple[tuple[type, str], ...] = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"))
_BOOLEANS = {"true": True, "false": False}


def _scalar(value: Any) -> tuple[str, Any] | None:
    kind = next((name for type_, name in _SCALARS if isinstance(value, type_)), None)
    return None if kind is None else (kind, value)


def _typed(value: Any) -> tuple[Kind, Any] | None:
    """An attribute's kind and what a cell read as that kind must equal; None for what no cell matches
    (null, an object, a list holding one of those or a list)."""
    if not isinstance(value, list):
        return _scalar(value)
    items = [item for item in map(_scalar, value) if item is not None]
    if len(items) != len(value):
        return None
    return tuple(kind for kind, _ in items), tuple(item for _, item in items)


def _typed_attributes(attributes: Any, names: list[str]) -> tuple[tuple[Kind, ...], tuple[Any, ...]] | None:
    """The kinds of a customer's attributes `names` and their values; None when a cell can match none."""
    found = [_typed(attributes.get(name)) for name in names] if isinstance(attributes, dict) else []
    typed = [each for each in found if each is not None]
    if len(typed) != len(names):
        return None
    return tuple(kind for kind, _ in typed), tuple(value for _, value in typed)


def _read_cell(cell: str, kind: Kind) -> Any:
    """The cell as a value of `kind` (a list's cell split on `|`), or None when it cannot be one."""
    if kind == "string":
        return cell
    if kind == "number":
        return cell_number(cell)
    if kind == "boolean":
        return _BOOLEANS.get(cell)
    parts = cell.split(SEPARATOR) if cell else []
    if len(parts) != len(kind):
        return None
    items = [_read_cell(part, item_kind) for part, item_kind in zip(parts, kind, strict=True)]
    return None if None in items else tuple(items)


def _cells_by_value(
    wanted: Iterable[tuple[str, ...]], kinds: tuple[Kind, ...]
) -> dict[tuple[Any, ...], list[tuple[str, ...]]]:
    """Each row's cells read as the attributes of one customer's `kinds`, to the rows that read so.

    Numbers equal by value (`1`, `1.0` and `1e0` are one key), so one look-up per customer finds its rows.
    """
    index: dict[tuple[Any, ...], list[tuple[str, ...]]] = {}
    for cells in wanted:
        values = tuple(_read_cell(cell, kind) for cell, kind in zip(cells, kinds, strict=True))
        if None not in values:
            index.setdefault(values, []).append(cells)
    return index


def _as_number(dialect: sa.engine.Dialect, name: str) -> sa.ColumnElement[Any]:
    """The attribute as a number where it is one: PostgreSQL refuses to cast text that is not a number,
    SQLite reads such text as 0 (a superset, which the caller narrows)."""
    attribute = customers.c.attributes[name]
    number: sa.ColumnElement[Any] = attribute.as_float()
    if dialect.name == "sqlite":
        return number
    return sa.case((sa.func.json_typeof(attribute) == "number", number))


@dataclass
class _Sought:
    """What one attribute is compared with, for a cheap SQL superset of the customers that can match."""

    texts: set[str] = field(default_factory=set)
    numbers: set[float] = field(default_factory=set)
    lists: bool = False

    def clause(self, dialect: sa.engine.Dialect, name: str) -> sa.ColumnElement[bool]:
        """The attribute's SQL text is a string itself on both databases, a boolean `true`/`false` on
        PostgreSQL and 1/0 on SQLite, a list its JSON text; numbers are compared as numbers."""
        stored = sa.cast(customers.c.attributes[name].as_string(), sa.Text)
        options = [stored.in_(sorted(self.texts))]
        if self.texts & set(_BOOLEANS):
            options.append(stored.in_(["1", "0"]))
        if self.numbers:
            options.append(_as_number(dialect, name).in_(sorted(self.numbers)))
        if self.lists:
            options.append(stored.like("[%"))
        return sa.or_(*options)


def _customers_where(
    conn: Connection, environment_id: str, names: list[str], sought: list[_Sought]
) -> sa.engine.Result[str, Any]:
    """(user_id, attributes) of the environment's customers that may match, oldest first, streamed."""
    query = (
        sa.select(customers.c.user_id, customers.c.attributes)
        .where(
            customers.c.environment_id == environment_id,
            *(each.clause(conn.dialect, name) for name, each in zip(names, sought, strict=True)),
        )
        .order_by(customers.c.seq)
        .execution_options(yield_per=500)
    )
    return conn.execute(query)


def matching_customers(
    conn: Connection, environment_id: str, names: list[str], wanted: list[tuple[str, ...]], limit: int | None = None
) -> dict[tuple[str, ...], list[str]]:
    """For each tuple of CSV cells in `wanted` (one cell per attribute of `names`), the user ids of the
    environment's customers whose attributes equal those cells (at most `limit` each), oldest first.

    A cell is text, read as each attribute's kind: a string attribute equals
    the same text, a number one a cell that is a JSON number of equal value
    (`1`, `1.0` and `1e0` all match 1 and 1.0), a boolean `true`/`false`,
    a list its items, each read so, joined by `|`. One query for them all: a
    CSV chunk's rows name the same attributes.
    """
    found: dict[tuple[str, ...], list[str]] = {cells: [] for cells in wanted}
    sought = [_Sought(lists=True) for _ in names]
    for cells in found:
        for cell, each in zip(cells, sought, strict=True):
            each.texts.add(cell)
            number = cell_number(cell)
            if number is not None:
                each.numbers.add(float(number))
    indexes: dict[tuple[Kind, ...], dict[tuple[Any, ...], list[tuple[str, ...]]]] = {}
    for user_id, attributes in _customers_where(conn, environment_id, names, sought):
        typed = _typed_attributes(attributes, names)
        if typed is None:
            continue
        kinds, values = typed
        index = indexes.get(kinds)
        if index is None:
            index = indexes[kinds] = _cells_by_value(found, kinds)
        for cells in index.get(values, ()):
            users = found[cells]
            if limit is None or len(users) < limit:
                users.append(user_id)
    return found


def customers_with(conn: Connection, environment_id: str, conditions: list[Rule]) -> list[str]:
    """The environment's customers whose attributes meet every one of the attribute `conditions`, oldest first.

    A manual start's filter: its conditions are segment rules' (`{attribute, op, value}`), decided by the
    segment rules' own evaluation (flows.segment_rules.matches: `1` equals `1.0`, not `"1"` or `true`). As
    for a segment, every customer of the environment may be examined; `eq` and `in` conditions narrow them in
    SQL first, to the cheap superset `_Sought` finds.
    """
    narrowing = [rule for rule in conditions if rule["op"] in ("eq", "in")]
    sought = [_Sought() for _ in narrowing]
    for rule, each in zip(narrowing, sought, strict=True):
        for value in rule["value"] if rule["op"] == "in" else [rule["value"]]:
            if isinstance(value, bool):
                each.texts.add(orjson.dumps(value).decode())
            elif isinstance(value, int | float):
                each.numbers.add(float(value))
            else:
                each.texts.add(value)
    rows = _customers_where(conn, environment_id, [rule["attribute"] for rule in narrowing], sought)
    rules = {"all": conditions}
    return [user_id for user_id, attributes in rows if isinstance(attributes, dict) and matches(rules, attributes, {})]


def existing_customers(conn: Connection, environment_id: str, user_ids: Iterable[str]) -> set[str]:
    """Which of `user_ids` have a customer profile in the environment."""
    query = sa.select(customers.c.user_id).where(
        customers.c.environment_id == environment_id, customers.c.user_id.in_(list(user_ids))
    )
    return set(conn.execute(query).scalars())


def segment_member_ids(conn: Connection, environment_id: str, segment_id: str) -> list[str] | None:
    """The segment's members, oldest first; None when the environment has no such segment."""
    exists = sa.select(segments.c.id).where(segments.c.id == segment_id, segments.c.environment_id == environment_id)
    if conn.execute(exists).first() is None:
        return None
    query = (
        sa.select(segment_members.c.user_id)
        .where(segment_members.c.segment_id == segment_id, segment_members.c.environment_id == environment_id)
        .order_by(segment_members.c.entered_at, segment_members.c.user_id)
    )
    return list(conn.execute(query).scalars())


@dataclass(frozen=True)
class ExistingMembers:
    """A segment trigger's existing members: the customers in its segment since before it took effect, whom it
    never starts. It took effect when its flow was first published, or when it was created if that was later.
    Who entered while it was in test mode or disabled, or watched another segment, is left out: they are not
    started either way, and so never is a customer the trigger started counted in."""

    segment_id: str
    entered_before: datetime

    def where(self) -> tuple[sa.ColumnElement[bool], ...]:
        """Their rows of `segment_members`."""
        return segment_members.c.segment_id == self.segment_id, segment_members.c.entered_at < self.entered_before


def existing_members(conn: Connection, trigger: Trigger) -> ExistingMembers | None:
    """The existing members of a segment trigger; None while its flow was never published (the trigger has not
    taken effect).

    An entry timed before the cutoff may not have committed yet (PostgreSQL: its writer took its time, then
    the flow was published), and its delivery is no run of the trigger's (it predates it): so the entries in
    flight into the segment are waited for (store.segment_locks), and the selection that follows sees them.
    An entry after that is timed after the cutoff, the trigger's.
    """
    assert trigger.segment_id is not None  # a segment trigger
    publication = publications(conn, [trigger.flow_id]).get(trigger.flow_id)
    if publication is None:
        return None
    await_entries(conn, trigger.environment_id, trigger.segment_id)
    return ExistingMembers(trigger.segment_id, took_effect(publication.first_at, trigger.created_at))


def count_existing(conn: Connection, existing: ExistingMembers) -> int:
    count: int = conn.execute(sa.select(sa.func.count()).where(*existing.where())).scalar_one()
    return count


def create_existing_members_task(
    conn: Connection, environment_id: str, flow_id: str, existing: ExistingMembers, task_input: dict[str, Any]
) -> BulkTask:
    """A manual start of the existing members, selected now into `bulk_task_users` in the order they entered
    the segment: one statement, however many they are."""
    task = create_task(conn, environment_id, flow_id, "manual", task_input, 0)
    entered, user = segment_members.c.entered_at, segment_members.c.user_id
    numbered = sa.select(sa.literal(task.id), sa.func.row_number().over(order_by=(entered, user)), user, entered)
    columns = ["task_id", "number", "user_id", "entered_at"]
    conn.execute(sa.insert(bulk_task_users).from_select(columns, numbered.where(*existing.where())))
    last = sa.select(sa.func.max(bulk_task_users.c.number)).where(bulk_task_users.c.task_id == task.id)
    total: int = conn.execute(last).scalar_one() or 0  # the rowcount of INSERT … SELECT is -1 on PostgreSQL here
    conn.execute(sa.update(bulk_tasks).where(bulk_tasks.c.id == task.id).values(total=total))
    return replace(task, total=total)


def selected_users(conn: Connection, task_id: str, after: int, limit: int) -> list[tuple[str, datetime]]:
    """The task's selected customers `after + 1` to `after + limit`, each with when their membership began."""
    query = (
        sa.select(bulk_task_users.c.user_id, bulk_task_users.c.entered_at)
        .where(bulk_task_users.c.task_id == task_id, bulk_task_users.c.number > after)
        .order_by(bulk_task_users.c.number)
        .limit(limit)
    )
    return [(user_id, entered_at) for user_id, entered_at in conn.execute(query)]


def membership_key(segment_id: str, user_id: str, entered_at: datetime) -> str:
    """The invocation key of an existing member's run, one per membership: starting the existing members again
    (following the offer twice, or another publication's) starts nobody twice (`already_started`)."""
    digest = hashlib.sha256("\x1f".join((segment_id, user_id, entered_at.isoformat())).encode()).hexdigest()
    return f"existing-{digest[:32]}"
