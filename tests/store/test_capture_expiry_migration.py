"""Migration 18 on a database without it: a capture armed before, which had no time limit, is disarmed (its
revision moves on), and capture can then be armed until a time.

Runs on SQLite, and on PostgreSQL when FLOWHOOK_TEST_POSTGRES is set.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from store import Store, flows, triggers
from store.clock import utcnow
from store.tables import schema_migrations
from store.tables import triggers as triggers_table

pytestmark = pytest.mark.anyio

AS_IT_WAS_BEFORE = (
    "ALTER TABLE triggers DROP COLUMN capture_expires_at",
    "DELETE FROM schema_migrations WHERE version = 18",
)


async def test_a_capture_armed_before_expiry_existed_is_disarmed(database: URL) -> None:
    store = await Store.open(database, fsync=False)
    try:
        flow = await store.write(lambda conn: flows.insert_flow(conn, "default", {"name": "f"}))

        def webhook(conn: sa.Connection) -> triggers.Trigger:
            return triggers.insert_trigger(conn, "default", flow.id, kind="webhook", mode="live", mapping={})

        armed, idle = await store.write(webhook), await store.write(webhook)
        arm = sa.update(triggers_table).where(triggers_table.c.id == armed.id).values(capture_armed=True)
        await store.write(lambda conn: conn.execute(arm))
        for statement in AS_IT_WAS_BEFORE:
            await store.write(lambda conn, statement=statement: conn.execute(sa.text(statement)))
    finally:
        await store.close()
    store = await Store.open(database, fsync=False)
    try:
        versions = sa.select(schema_migrations.c.version)
        assert 18 in await store.read(lambda conn: set(conn.execute(versions).scalars()))
        for trigger, revision in ((armed, 2), (idle, 1)):
            found = await store.read(lambda conn, trigger=trigger: triggers.get_trigger(conn, "default", trigger.id))
            assert isinstance(found, triggers.Trigger)
            assert (found.capture_armed, found.capture_expires_at, found.revision) == (False, None, revision)
        until = utcnow() + timedelta(minutes=10)
        rearmed = await store.write(lambda conn: triggers.set_capture(conn, "default", armed.id, until))
        assert rearmed is not None and (rearmed.capture_armed, rearmed.capture_expires_at) == (True, until)
        stored = sa.select(triggers_table.c.capture_armed).where(triggers_table.c.id == armed.id)
        assert await store.read(lambda conn: conn.execute(stored).scalar_one()) is True
    finally:
        await store.close()
