"""Schema migrations, run at every start.

A fresh database gets the current schema (`tables.metadata`) in one go and is
stamped with every migration's version, the way Alembic recommends; an older
database gets the migrations it has not seen, in order. So a change to the
schema is two edits: the table in `store.tables` and a new `Migration` here
that brings an existing database to the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import (
    analytics_events,
    bulk_tasks,
    event_deliveries,
    invocations,
    metadata,
    schema_migrations,
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
    wanted = {"ix_analytics_events_environment_user_event", "ix_event_deliveries_event"}
    for table in (analytics_events, event_deliveries):
        for index in table.indexes:
            if index.name in wanted:
                conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _bulk_task_callbacks(conn: Connection) -> None:
    """A Marketo task's callback state (flows.marketo_callbacks)."""
    _add_columns(conn, bulk_tasks.c.callback)


def _add_columns(conn: Connection, *columns: sa.Column[Any]) -> None:
    """ALTER TABLE … ADD COLUMN for each column its table lacks (a SQLite rebuild may have added it already)."""
    for column in columns:
        if column.name in {found["name"] for found in sa.inspect(conn).get_columns(column.table.name)}:
            continue
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {column.table.name} ADD COLUMN {column.name} {kind}"))


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "flows, cards, analytics, test users, credentials", _flows_and_api_triggers),
    Migration(3, "flowInvocationId unique per flow and mode", _idempotency_key_per_mode),
    Migration(4, "no index on flow_instances.waiting_card_id", _drop_waiting_card_index),
    Migration(5, "event triggers", _event_triggers),
    Migration(6, "customers, segments, bulk starts", _customers_and_segments),
    Migration(7, "indexes for event counts", _event_count_indexes),
    Migration(8, "bulk task callbacks", _bulk_task_callbacks),
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
