"""The SQLite flush acknowledges a write only once the fsync covered the log SQLite wrote it to.

What SQLite does with its `-wal` file decides what a flush may take for
granted: while a connection is open the file stays where it is, whatever
the checkpoints do; only the last connection to close removes it. So a log
missing from its path, or another file there, means the data directory was
deleted or replaced under the running service: SQLite goes on committing
into the file it holds open, and an fsync of the path would cover nothing.
Such writes fail (NotDurable: a 503, see tests/ingress/test_unflushed_writes.py).

The database file is held to the same rule: SQLite does not move it (a
checkpoint writes into it in place, a write connection opened anew finds
the same file), so a file missing from its path, or another one there, is
the database deleted or replaced under the service, its log left in place
(a 503 too, see tests/ingress/test_replaced_database.py).
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

CHECKPOINTED_ROWS = 1500  # of 4 KiB: 6 MB, past SQLite's automatic checkpoint at 1000 pages (4 MB) of the log


@pytest.fixture
async def flushed(tmp_path: Path) -> AsyncIterator[Store]:
    """A store on an SQLite file of its own directory, with the flush the service runs by default."""
    store = await Store.open(database_url(None, tmp_path / "data"))
    yield store
    await store.close()


def directory(store: Store) -> Path:
    database = store.engines.write.url.database
    assert database is not None
    return Path(database).parent


def log_of(store: Store) -> Path:
    return directory(store) / "flowhook.db-wal"


async def put(store: Store, key: str, value: str = "v") -> None:
    await store.write(lambda conn: conn.execute(sa.insert(service_state).values(key=key, value=value)))


def checkpoint(database: Path) -> None:
    """The most a checkpoint does to the log (from a connection of its own: not inside a transaction)."""
    connection = sqlite3.connect(database)
    try:
        assert connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not blocked
    finally:
        connection.close()


async def test_the_log_stays_in_place_while_a_connection_is_open(flushed: Store) -> None:
    await put(flushed, "first")
    log = log_of(flushed)
    opened = log.stat().st_ino
    for first in range(0, CHECKPOINTED_ROWS, 100):
        rows = [{"key": f"row-{index}", "value": "x" * 4096} for index in range(first, first + 100)]
        await flushed.write(lambda conn, rows=rows: conn.execute(sa.insert(service_state), rows))
    assert log.stat().st_size < CHECKPOINTED_ROWS * 4096  # automatic checkpoints rewound it: written over
    await asyncio.to_thread(checkpoint, directory(flushed) / "flowhook.db")
    assert log.stat().st_size == 0 and log.stat().st_ino == opened  # truncated, not removed
    await put(flushed, "after-the-checkpoints")  # acknowledged: the flush found its log
    assert log.stat().st_ino == opened


async def test_a_log_removed_by_the_last_connection_is_made_anew_by_the_next(flushed: Store) -> None:
    """Every connection closed (the write connection lost, no read open): SQLite checkpoints and removes the
    log, and the next connection makes a new file. The flush follows it rather than refuse every write."""
    await put(flushed, "before")
    old_log = log_of(flushed).stat().st_ino
    os.link(log_of(flushed), directory(flushed).parent / "old-log")  # its inode number cannot be the next log's
    flushed.engines.read.dispose()
    flushed.engines.write.dispose()
    assert not log_of(flushed).exists()
    await put(flushed, "after")  # acknowledged
    assert log_of(flushed).stat().st_ino != old_log


def _delete_the_log(data: Path) -> None:
    os.unlink(data / "flowhook.db-wal")


def _delete_the_directory(data: Path) -> None:
    shutil.rmtree(data)


def _replace_the_directory(data: Path) -> None:
    shutil.copytree(data, data.with_name("copy"))
    data.rename(data.with_name("old"))
    data.with_name("copy").rename(data)


@pytest.mark.parametrize("damage", [_delete_the_log, _delete_the_directory, _replace_the_directory])
async def test_a_write_is_not_acknowledged_without_its_log(flushed: Store, damage: Callable[[Path], None]) -> None:
    await put(flushed, "before")
    damage(directory(flushed))
    with pytest.raises(NotDurable):
        await put(flushed, "after")  # SQLite committed it, into a file that is no longer the database's


def database_of(store: Store) -> Path:
    return directory(store) / "flowhook.db"


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
