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
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import metadata, schema_migrations


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


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial_schema),
    Migration(2, "flows, cards, analytics, test users, credentials", _flows_and_api_triggers),
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
    now = datetime.now(timezone.utc)
    if pending:
        conn.execute(
            sa.insert(schema_migrations),
            [{"version": m.version, "name": m.name, "applied_at": now} for m in pending],
        )
    return [m.version for m in pending]
