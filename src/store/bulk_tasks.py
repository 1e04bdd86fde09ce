"""Bulk start tasks (CSV files, manual starts) and the customer look-ups they need.

A task keeps its input (the CSV rows, or the selected user ids) and its
progress: `processed` rows, `started` invocations, and every skipped row in
a row of its own (`bulk_task_skips`: which row, a stable code and the reason
in words), so a chunk adds its skipped rows rather than rewriting a list.
The runner (flows.bulk_runner) works through it a chunk at a time; `advance`
stores a chunk's invocations and skipped rows and moves the progress on in
one transaction, and only when the task is still where the chunk began, so a
crash resumes at the first row not committed and no row is started twice.

Customer attributes are matched as text, the way a CSV cell writes them: a
string as itself, a number or boolean as JSON writes it (`42`, `4.5`,
`true`), a list as its items joined by `|`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import iso, utcnow
from store.ids import new_id
from store.invocations import Acceptance, AcceptRequest, accept_batch
from store.storable import storable
from store.tables import bulk_task_skips, bulk_tasks, customers, segment_members, segments

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
OPEN = (PENDING, RUNNING)
MARKETO = "marketo"  # a Marketo flow step's batch of leads (flows.marketo_leads), with its callback
KINDS = ("csv", "csv-test", "manual", MARKETO)
#: The code of a row whose `flowInvocationId` had started the flow before (a Marketo lead's is a success).
ALREADY_STARTED = "already_started"


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
class Outcome:
    """What became of one row: an invocation to accept, or the `code` and `reason` it is skipped with.
    `ref` names the row in the task's skipped rows (`{"row": 2}` or `{"userId": "u1"}`)."""

    ref: dict[str, Any]
    accept: AcceptRequest | None = None
    code: str | None = None
    reason: str | None = None


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
    for outcome in chunk.outcomes:
        code, reason = outcome.code, outcome.reason
        if outcome.accept is not None:
            verdict: Acceptance = next(verdicts)
            if verdict.verdict == "accepted":
                started += 1
                continue
            code, reason = _VERDICTS[verdict.verdict]
            reason = reason.format(key=outcome.accept.flow_invocation_id)
        assert code is not None and reason is not None  # an outcome without an invocation says why
        skipped.append({"ref": outcome.ref, "code": code, "reason": storable(reason)})  # may quote a lead's text
    if skipped:
        last = conn.execute(_LAST_SKIP, {"task_id": chunk.task_id}).scalar_one() or 0
        numbered = [{**skip, "task_id": chunk.task_id, "number": last + n} for n, skip in enumerate(skipped, 1)]
        conn.execute(sa.insert(bulk_task_skips), numbered)
    processed = claimed.processed + len(chunk.outcomes)
    status = FAILED if chunk.failed else DONE if processed >= claimed.total else RUNNING
    values = {"processed": processed, "started": claimed.started + started, "status": status, "updated_at": utcnow()}
    conn.execute(sa.update(bulk_tasks).where(bulk_tasks.c.id == chunk.task_id).values(**values))
    return Advanced(len(chunk.outcomes), started)


def attribute_text(value: Any) -> str | None:
    """An attribute as a CSV cell writes it; None for what no cell can match (null, an object)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        items = [attribute_text(item) for item in value]
        return None if None in items else "|".join(item for item in items if item is not None)
    return None


def _candidates(names: list[str], wanted: list[tuple[str, ...]]) -> list[sa.ColumnElement[bool]]:
    """A superset of the customers matching any of `wanted`, cheap in SQL; `attribute_text` decides exactly.

    The attribute's SQL text is the value itself for a string on both databases and JSON's spelling of a
    number on PostgreSQL; SQLite gives a boolean as 1 or 0 and a list as its JSON text.
    """
    clauses: list[sa.ColumnElement[bool]] = []
    for index, name in enumerate(names):
        texts = {texts[index] for texts in wanted}
        stored = sa.cast(customers.c.attributes[name].as_string(), sa.Text)
        options = [stored.in_(texts), stored.like("[%")]
        if texts & {"true", "false"}:
            options.append(stored.in_(["1", "0"]))
        clauses.append(sa.or_(*options))
    return clauses


def matching_customers(
    conn: Connection, environment_id: str, names: list[str], wanted: list[tuple[str, ...]], limit: int | None = None
) -> dict[tuple[str, ...], list[str]]:
    """For each tuple of texts in `wanted` (one text per attribute of `names`), the user ids of the
    environment's customers whose attributes are those texts (at most `limit` each), oldest first.

    One query for them all: a CSV chunk's rows name the same attributes.
    """
    found: dict[tuple[str, ...], list[str]] = {texts: [] for texts in wanted}
    query = (
        sa.select(customers.c.user_id, customers.c.attributes)
        .where(customers.c.environment_id == environment_id, *_candidates(names, wanted))
        .order_by(customers.c.seq)
        .execution_options(yield_per=500)
    )
    for user_id, attributes in conn.execute(query):
        texts = [attribute_text(attributes.get(name)) for name in names] if isinstance(attributes, dict) else [None]
        users = found.get(tuple(text for text in texts if text is not None)) if None not in texts else None
        if users is not None and (limit is None or len(users) < limit):
            users.append(user_id)
    return found


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
