"""The SQLite flush acknowledges a write only while the database file is the one the write connection opened.

SQLite does not move its database file: checkpoints write into it in place,
and a write connection opened anew (the last one lost) finds the same file.
So a file missing from the path, or another one there, is the database
deleted or replaced under the running service, its log left in place; the
writes that follow go into the file SQLite holds open, no longer the
database's, and fail (NotDurable: a 503, see tests/ingress/test_replaced_database.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from store import Store, database_url
from store.tables import service_state
from store.writer import NotDurable

pytestmark = pytest.mark.anyio


@pytest.fixture
async def flushed(tmp_path: Path) -> AsyncIterator[Store]:
    """A store on an SQLite file, with the flush the service runs by default."""
    store = await Store.open(database_url(None, tmp_path))
    yield store
    await store.close()


def database_of(store: Store) -> Path:
    database = store.engines.write.url.database
    assert database is not None
    return Path(database)


async def put(store: Store, key: str) -> None:
    await store.write(lambda conn: conn.execute(sa.insert(service_state).values(key=key, value="v")))


def checkpoint(database: Path) -> None:
    connection = sqlite3.connect(database)
    try:
        assert connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not blocked
    finally:
        connection.close()


async def test_the_database_file_stays_the_same_through_checkpoints_and_reconnections(flushed: Store) -> None:
    database = database_of(flushed)
    opened = database.stat().st_ino
    await put(flushed, "first")
    await asyncio.to_thread(checkpoint, database)
    await put(flushed, "after-a-checkpoint")  # acknowledged
    flushed.engines.read.dispose()
    flushed.engines.write.dispose()  # the log removed with the last connection; the database stays
    await put(flushed, "after-reconnecting")  # acknowledged
    assert database.stat().st_ino == opened


def _delete_the_database(database: Path) -> None:
    database.unlink()


def _replace_the_database(database: Path) -> None:
    """As restoring a copy over it does: another file at the path, the log left as it was."""
    shutil.copyfile(database, database.with_name("restored.db"))
    os.replace(database.with_name("restored.db"), database)


@pytest.mark.parametrize("damage", [_delete_the_database, _replace_the_database])
async def test_a_write_is_not_acknowledged_into_a_database_file_gone_from_its_path(
    flushed: Store, damage: Callable[[Path], None]
) -> None:
    await put(flushed, "before")
    damage(database_of(flushed))
    with pytest.raises(NotDurable):
        await put(flushed, "after")
    with pytest.raises(NotDurable):  # and every write after it, until a restart
        await put(flushed, "later")
    assert flushed.writer.flush_failed_within(10.0)
