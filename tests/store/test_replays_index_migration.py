"""Migration 16 on a database without it: the partial index of requests' replays is created.

Runs on SQLite, and on PostgreSQL when FLOWHOOK_TEST_POSTGRES is set.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from store import Store

pytestmark = pytest.mark.anyio

AS_IT_WAS_BEFORE = ("DROP INDEX ix_request_log_replay_of", "DELETE FROM schema_migrations WHERE version = 16")


def replay_indexes(conn: sa.Connection) -> list[str]:
    return [
        index["name"]
        for index in sa.inspect(conn).get_indexes("request_log")
        if index["name"] and "replay" in index["name"]
    ]


async def test_a_database_before_the_index_gets_it(database: URL) -> None:
    store = await Store.open(database, fsync=False)
    try:
        assert await store.read(replay_indexes) == ["ix_request_log_replay_of"]
        for statement in AS_IT_WAS_BEFORE:
            await store.write(lambda conn, statement=statement: conn.execute(sa.text(statement)))
        assert await store.read(replay_indexes) == []
    finally:
        await store.close()
    store = await Store.open(database, fsync=False)
    try:
        assert await store.read(replay_indexes) == ["ix_request_log_replay_of"]
    finally:
        await store.close()
