"""Migration 15 on a database without it: flows gain `archived_at`, none of them archived, and can then be archived.

Runs on SQLite, and on PostgreSQL when FLOWHOOK_TEST_POSTGRES is set.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from store import Store, flows
from store.tables import schema_migrations

pytestmark = pytest.mark.anyio

AS_IT_WAS_BEFORE = ("ALTER TABLE flows DROP COLUMN archived_at", "DELETE FROM schema_migrations WHERE version = 15")


async def test_flows_of_a_database_before_archiving_are_not_archived_and_can_be(database: URL) -> None:
    store = await Store.open(database, fsync=False)
    try:
        flow = await store.write(lambda conn: flows.insert_flow(conn, "default", {"name": "f"}))
        for statement in AS_IT_WAS_BEFORE:
            await store.write(lambda conn, statement=statement: conn.execute(sa.text(statement)))
    finally:
        await store.close()
    store = await Store.open(database, fsync=False)
    try:
        versions = sa.select(schema_migrations.c.version)
        assert 15 in await store.read(lambda conn: set(conn.execute(versions).scalars()))
        assert [found.id for found in await store.read(lambda conn: flows.list_flows(conn, "default"))] == [flow.id]
        archived = await store.write(lambda conn: flows.set_archived(conn, "default", flow.id, archived=True))
        assert archived is not None and archived.archived_at is not None
        assert await store.read(lambda conn: flows.list_flows(conn, "default")) == []
    finally:
        await store.close()
