"""Schema migrations, run at every start.

A fresh database gets the current schema (`tables.metadata`) in one go and is
stamped with every migration's version, the way Alembic recommends; an older
database gets the migrations it has not seen, in order. So a change to the
schema is two edits: the table in `store.tables` and a new `Migration` here
that brings an existing database to the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.storable import storable
from store.tables import (
    Json,
    bulk_task_ignored,
    bulk_task_skips,
    bulk_task_users,
    bulk_tasks,
    event_deliveries,
    flows,
    invocations,
    metadata,
    schema_migrations,
    segments,
    triggers,
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


def _initial_schema(conn: Connection) -> None:
    metadata.create_all(conn)


def _flows_and_api_triggers(conn: Connection) -> None:
    # Tables added with the flow executor and API triggers; create_all skips
    # the tables a database already has.
    metadata.create_all(conn)


# The key migration 3 replaces, on a stand-in table so the schema itself is untouched.
_KEY_PER_FLOW = sa.UniqueConstraint("flow_id", "flow_invocation_id", name="uq_invocations_flow_key")
sa.Table("invocations", sa.MetaData(), sa.Column("flow_id"), sa.Column("flow_invocation_id"), _KEY_PER_FLOW)


def _idempotency_key_per_mode(conn: Connection) -> None:
    """`flowInvocationId` unique per (flow, mode), not per flow: test runs never use up live keys."""
    if conn.dialect.name == "sqlite":
        _rebuild_sqlite_table(conn, invocations)
        return
    conn.execute(sa.schema.DropConstraint(_KEY_PER_FLOW, if_exists=True))
    [key] = [index for index in invocations.indexes if index.name == "uq_invocations_flow_mode_key"]
    conn.execute(sa.schema.CreateIndex(key, if_not_exists=True))


def _rebuild_sqlite_table(conn: Connection, table: sa.Table) -> None:
    """Give a table its current definition with its rows, SQLite's recipe for what ALTER TABLE cannot do.

    SQLite cannot drop a constraint declared in CREATE TABLE. The old table is
    renamed, its indexes dropped (their names go with it and would clash),
    the table created anew with its indexes, the rows copied, the old one dropped.
    Only for a table no foreign key points at: the rename would carry such
    references over to the old table (no table references `invocations`).
    """
    quote = conn.dialect.identifier_preparer.quote
    old = f"{table.name}_before_rebuild"
    conn.execute(sa.text(f"ALTER TABLE {quote(table.name)} RENAME TO {quote(old)}"))
    for index in sa.inspect(conn).get_indexes(old):  # without the automatic ones, which go with the table
        conn.execute(sa.text(f"DROP INDEX {quote(str(index['name']))}"))
    kept = {column["name"] for column in sa.inspect(conn).get_columns(old)}
    table.create(conn)
    columns = [column.name for column in table.columns if column.name in kept]  # a later migration adds the rest
    source = sa.table(old, *(sa.column(name) for name in columns))
    conn.execute(sa.insert(table).from_select(columns, sa.select(source)))
    conn.execute(sa.text(f"DROP TABLE {quote(old)}"))


def _drop_waiting_card_index(conn: Connection) -> None:
    """Card actions find their flow instance through the card, so nothing reads this index; every
    instance write still paid for it."""
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_flow_instances_waiting_card"))


def _event_triggers(conn: Connection) -> None:
    """Event triggers: the event a trigger listens for, the hops an invocation is from an API event, and
    the deliveries outbox (created by create_all, which skips the tables a database already has)."""
    _add_columns(conn, triggers.c.event_name, invocations.c.hop)
    [index] = [index for index in triggers.indexes if index.name == "ix_triggers_environment_event"]
    conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    metadata.create_all(conn)


def _customers_and_segments(conn: Connection) -> None:
    """Customer profiles, segments and their members, bulk start tasks, and a segment trigger's segment."""
    _add_columns(conn, triggers.c.segment_id)
    metadata.create_all(conn)


def _event_count_indexes(conn: Connection) -> None:
    """A customer's events of a name (segment rules count them) and an event's deliveries (a repeated
    event is answered with them): both were walks of a whole table."""
    _create_indexes(conn, "ix_analytics_events_environment_user_event", "ix_event_deliveries_event")


def _bulk_task_callbacks(conn: Connection) -> None:
    """A Marketo task's callback state (flows.marketo_callbacks)."""
    _add_columns(conn, bulk_tasks.c.callback)


def _bulk_task_skips(conn: Connection) -> None:
    """A bulk task's skipped rows move from the task's JSON list, rewritten whole with every chunk, to a row
    each in `bulk_task_skips`, with a code: the reasons they were given up to now say which."""
    bulk_task_skips.create(conn, checkfirst=True)
    if "skipped" not in {column["name"] for column in sa.inspect(conn).get_columns(bulk_tasks.name)}:
        return  # bulk_tasks was created by this version's schema (migration 6 on a database older than it)
    before = sa.table(bulk_tasks.name, sa.column("id", sa.Text), sa.column("skipped", Json))
    for task_id in list(conn.execute(sa.select(before.c.id).order_by(before.c.id)).scalars()):
        listed = conn.execute(sa.select(before.c.skipped).where(before.c.id == task_id)).scalar_one() or []
        rows = [_legacy_skip(task_id, number, entry) for number, entry in enumerate(listed, 1)]
        if rows:
            conn.execute(sa.insert(bulk_task_skips), rows)
    conn.execute(sa.text(f"ALTER TABLE {bulk_tasks.name} DROP COLUMN skipped"))


# The reasons of version 8's skipped rows (its texts, whatever the code says now) and their codes.
_LEGACY_REASONS = [
    (re.compile(pattern, re.DOTALL), code)
    for pattern, code in (
        (r"flowInvocationId .* started this flow before; nothing new was started", "already_started"),
        (r"flowInvocationId .* was already used with another payload", "idempotency_conflict"),
        (r"the flow has no published version", "flow_not_published"),
        (r"the trigger was deleted", "trigger_deleted"),
        (r"the row has \d+ cells; the header has \d+", "wrong_cell_count"),
        (r"the row names no user in .*", "no_users"),
        (r"flowInvocationId is longer than \d+ characters", "key_too_long"),
        (r"payload\.variables\.[^:]*: .* is not an? \w+", "invalid_variable"),
        (r"flowConfigId .*: no such flow in this environment", "flow_not_found"),
        (r"no customer matches .*", "no_match"),
        (r"more than \d+ customers match .*", "too_many_matches"),
        (r"no customer profile: .*", "no_customer_profile"),
    )
]


def _legacy_skip(task_id: str, number: int, entry: dict[str, Any]) -> dict[str, Any]:
    """A version-8 skipped entry (`{row | userId | lead…, reason}`, a Marketo lead's with its `errorCode`)
    as a `bulk_task_skips` row. Any other reason was a `/start` problem: `validation_error`."""
    reason = storable(str(entry.get("reason") or ""))  # version 8 kept NUL inside JSON; PostgreSQL's text cannot
    marketo = entry.get("errorCode")
    if isinstance(marketo, str):
        code = "mapping_skipped" if marketo == "SKIPPED" else marketo.lower()
    else:
        code = next((code for pattern, code in _LEGACY_REASONS if pattern.fullmatch(reason)), "validation_error")
    ref = {name: value for name, value in entry.items() if name not in ("reason", "errorCode")}
    return {"task_id": task_id, "number": number, "ref": ref, "code": code, "reason": reason}


def _event_delivery_retries(conn: Connection) -> None:
    """A delivery's attempts and due time: the dispatcher retries a transient failure later (flows.dispatcher).
    Settled deliveries count the one attempt that settled them; the pending ones are due as they were, in the
    order of an index that leads with the due time."""
    if _add_columns(conn, event_deliveries.c.attempts, event_deliveries.c.due_at):
        table = event_deliveries.c
        settled = sa.case((table.status == "pending", 0), else_=1)
        conn.execute(sa.update(event_deliveries).values(attempts=settled, due_at=table.created_at))
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_event_deliveries_status_seq"))
    [index] = [index for index in event_deliveries.indexes if index.name == "ix_event_deliveries_status_due"]
    conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _segment_evaluations(conn: Connection) -> None:
    """A segment's evaluation state and lease, so that an evaluation cut short is finished in the background
    (flows.segment_evaluation). The segments there are count as evaluated: their evaluation ran in the request
    that created or edited them (and the docs said to repeat a PUT cut short), with counts nobody kept."""
    table = segments.c
    added = (
        table.evaluated_revision,
        table.evaluation_after,
        table.evaluation_lease,
        table.evaluation_examined,
        table.evaluation_entered,
        table.evaluation_exited,
    )
    if _add_columns(conn, *added):
        conn.execute(sa.update(segments).values(evaluated_revision=table.revision))
    [index] = [index for index in segments.indexes if index.name == "ix_segments_evaluation_lease"]
    conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _trigger_listing_indexes(conn: Connection) -> None:
    """The environment's triggers newest first, a page at a time: its stored triggers and its flows (each
    flow's API trigger), each an index range (store.triggers.list_environment_triggers)."""
    _create_indexes(conn, "ix_triggers_environment_created", "ix_flows_environment_created")


def _drop_flows_environment_index(conn: Connection) -> None:
    """Migration 12's (environment_id, created_at, id) serves every lookup of an environment's flows."""
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_flows_environment_id"))


def _flow_archiving(conn: Connection) -> None:
    """A flow's archive time: an archived flow starts nothing new (docs/flows.md, Archiving a flow)."""
    _add_columns(conn, flows.c.archived_at)


def _bulk_task_users(conn: Connection) -> None:
    """A start of a segment trigger's existing members keeps its selection in rows, however many: the task's
    JSON input holds at most a manual start's 10,000 user ids. Nothing to backfill: no task had such a start."""
    bulk_task_users.create(conn, checkfirst=True)


def _bulk_task_ignored(conn: Connection) -> None:
    """A test sender's report of whom its rows ignored. Nothing to backfill: earlier tasks never recorded it."""
    bulk_task_ignored.create(conn, checkfirst=True)


def _replays_index(conn: Connection) -> None:
    """A request's replays: a bulk replay passes over requests a replay already recovered."""
    _create_indexes(conn, "ix_request_log_replay_of")


def _capture_expiry(conn: Connection) -> None:
    """An armed capture lapses (store.triggers.capture_armed): one armed before had no time limit, and is
    disarmed rather than given one, so a production request it was left armed for is not taken as a sample."""
    if _add_columns(conn, triggers.c.capture_expires_at):
        armed = sa.update(triggers).where(triggers.c.capture_armed)
        conn.execute(armed.values(capture_armed=False, revision=triggers.c.revision + 1))


def _create_indexes(conn: Connection, *names: str) -> None:
    """The schema's indexes of these names, on a database that lacks them."""
    for table in metadata.sorted_tables:
        for index in table.indexes:
            if index.name in names:
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _add_columns(conn: Connection, *columns: sa.Column[Any]) -> bool:
    """ALTER TABLE … ADD COLUMN for each column its table lacks (a SQLite rebuild may have added it already),
    with its NOT NULL and default (which SQLite requires together); whether any was added, so that a backfill
    runs once and never again over values written since."""
    added = False
    for column in columns:
        if column.name in {found["name"] for found in sa.inspect(conn).get_columns(column.table.name)}:
            continue
        definition = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {column.table.name} ADD COLUMN {definition}"))
        added = True
    return added


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "flows, cards, analytics, test users, credentials", _flows_and_api_triggers),
    Migration(3, "flowInvocationId unique per flow and mode", _idempotency_key_per_mode),
    Migration(4, "no index on flow_instances.waiting_card_id", _drop_waiting_card_index),
    Migration(5, "event triggers", _event_triggers),
    Migration(6, "customers, segments, bulk starts", _customers_and_segments),
    Migration(7, "indexes for event counts", _event_count_indexes),
    Migration(8, "bulk task callbacks", _bulk_task_callbacks),
    Migration(9, "a row per skipped bulk task row, with its code", _bulk_task_skips),
    Migration(10, "event delivery retries", _event_delivery_retries),
    Migration(11, "segment evaluations finished in the background", _segment_evaluations),
    Migration(12, "indexes for the environment's trigger listing", _trigger_listing_indexes),
    Migration(13, "no index on flows.environment_id alone", _drop_flows_environment_index),
    Migration(14, "a start of a segment trigger's existing members selects them in rows", _bulk_task_users),
    Migration(15, "flows can be archived", _flow_archiving),
    Migration(16, "an index of requests' replays", _replays_index),
    Migration(17, "a test sender's rows record whom they ignored", _bulk_task_ignored),
    Migration(18, "an armed capture lapses", _capture_expiry),
)


def migrate(conn: Connection) -> list[int]:
    """Bring the schema up to date inside the caller's write transaction.

    Returns the versions applied. Safe when several processes start at once:
    SQLite write transactions are exclusive (BEGIN IMMEDIATE, see
    store.engine) and PostgreSQL takes an advisory lock.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7233616)"))
    if not sa.inspect(conn).has_table(schema_migrations.name):
        metadata.create_all(conn)
        pending = list(MIGRATIONS)
    else:
        applied = set(conn.execute(sa.select(schema_migrations.c.version)).scalars())
        pending = [m for m in MIGRATIONS if m.version not in applied]
        for migration in pending:
            migration.apply(conn)
    now = datetime.now(UTC)
    if pending:
        conn.execute(
            sa.insert(schema_migrations),
            [{"version": m.version, "name": m.name, "applied_at": now} for m in pending],
        )
    return [m.version for m in pending]
