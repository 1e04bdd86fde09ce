"""Migration 10 on a database of version 9: every delivery gets its attempts and due time, the pending index its
due time, and the pending deliveries are dispatched as before.

Runs on SQLite, and on PostgreSQL when FLOWHOOK_TEST_POSTGRES is set.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from flows.dispatcher import EventDispatcher
from flows.mapping_runner import MappingRunner
from mapper import Limits
from mapper.pool import SandboxPool
from store import Store, flows
from store.clock import utcnow
from store.event_deliveries import enqueue
from store.ids import new_id
from store.tables import analytics_events, event_deliveries
from store.triggers import insert_trigger

pytestmark = pytest.mark.anyio
MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId"}}
AS_VERSION_9_LEFT_IT = (
    "DROP INDEX ix_event_deliveries_status_due",
    "ALTER TABLE event_deliveries DROP COLUMN attempts",
    "ALTER TABLE event_deliveries DROP COLUMN due_at",
    "CREATE INDEX ix_event_deliveries_status_seq ON event_deliveries (status, seq)",
    "DELETE FROM schema_migrations WHERE version >= 10",
)


def two_deliveries(conn: Connection) -> None:
    flow = flows.insert_flow(conn, "default", {"name": "f", "variables": [], "steps": []})
    flows.publish(conn, "default", flow.id)
    insert_trigger(conn, "default", flow.id, kind="event", mode="live", mapping=MAPPING, event_name="signed-up")
    now = utcnow()
    for user in ("settled", "waiting"):
        row = {"id": new_id("evt"), "environment_id": "default", "event_name": "signed-up", "timestamp": now}
        row |= {"end_user_id": user, "flow_id": None, "event_source": "live", "properties": {}, "metadata": {}}
        conn.execute(sa.insert(analytics_events).values(**row))
        enqueue(conn, [row], 1, now=now)


def dispatcher(store: Store) -> EventDispatcher:
    return EventDispatcher(store, MappingRunner(SandboxPool(1), Limits()))


async def rows(store: Store) -> list[dict[str, Any]]:
    def read(conn: Connection) -> list[dict[str, Any]]:
        query = sa.select(event_deliveries).order_by(event_deliveries.c.seq)
        return [dict(row._mapping) for row in conn.execute(query)]

    return await store.read(read)


async def test_a_version_9_database_gets_attempts_and_due_times_and_dispatches_what_was_pending(
    database: URL,
) -> None:
    store = await Store.open(database, fsync=False)
    try:
        await store.write(two_deliveries)
        await store.write(
            lambda conn: conn.execute(
                sa.update(event_deliveries).where(event_deliveries.c.seq == 1).values(status="accepted")
            )
        )
        for statement in AS_VERSION_9_LEFT_IT:
            await store.write(lambda conn, statement=statement: conn.execute(sa.text(statement)))
    finally:
        await store.close()
    store = await Store.open(database, fsync=False)
    try:
        settled, waiting = await rows(store)
        assert (settled["status"], settled["attempts"]) == ("accepted", 1)
        assert (waiting["status"], waiting["attempts"], waiting["due_at"]) == ("pending", 0, waiting["created_at"])
        indexes = await store.read(
            lambda conn: {index["name"] for index in sa.inspect(conn).get_indexes("event_deliveries")}
        )
        assert "ix_event_deliveries_status_due" in indexes and "ix_event_deliveries_status_seq" not in indexes
        assert await dispatcher(store).drain() == 1
        assert [(row["status"], row["attempts"]) for row in await rows(store)] == [("accepted", 1), ("accepted", 1)]
    finally:
        await store.close()
