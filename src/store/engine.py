"""Database engines: a write engine and a read engine over one URL.

SQLAlchemy Core runs synchronously in worker threads (store.database): a
whole batch of writes is one hop to the writer thread instead of one
event-loop round trip per statement, which is what an async driver costs
(measured on batches of 32 accepted webhooks: ~50 µs of event-loop time per
webhook through aiosqlite, ~4 µs this way). The same Core statements run on
PostgreSQL (psycopg).

SQLite (the embedded default) runs in WAL mode with `synchronous=NORMAL`
plus an explicit flush: COMMIT writes the transaction to the write-ahead log
(the OS has it: it survives a kill -9 of this process), and `WalFlush`
fsyncs the log before anyone is told the write happened, so an acknowledged
write also survives a power cut or kernel crash (on a disk that honours
fsync). That is what `synchronous=FULL` would guarantee, but the fsync runs
outside SQLite's write lock, overlapped with the next batch (store.writer).
A transaction committed but not yet flushed when the power goes may be lost;
it was never acknowledged. Checkpoints fsync on their own. A flush that
cannot show it covered the log SQLite wrote fails (`WalFlush`), and so do
the writes it covers. Without the flush (`Store.open(fsync=False)`, setting
`durability=os`) a write is acknowledged at COMMIT: safe from a crash of
flowhook, not of the machine.

Writes use `BEGIN IMMEDIATE` so a write transaction holds SQLite's write lock
from its first statement: no stale-snapshot upgrades, and several processes
on one file serialise cleanly (`busy_timeout` makes them wait instead of
failing). PostgreSQL needs none of this: its COMMIT is durable.

PostgreSQL's pooled connections are tested before each use (SQLAlchemy's
`pool_pre_ping`, "pessimistic" disconnect handling): after PostgreSQL
restarts, or an administrator or a failover ends its sessions, every pooled
connection is dead, and without the test the first request to take one got
a 503 (SQLAlchemy's "optimistic" handling then renews the rest of the pool;
the requests with a connection in hand when it happened fail anyway). The
test costs a round trip per checkout: one per group commit, however many
writes it holds, and one per read, which the webhook path makes only to
check its cached configuration (measured on loopback: ~40-80 µs, against
~150-250 µs for a one-row write transaction). Connections to SQLite do not
break.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from store.writer import NotDurable

SQLITE_PRAGMAS = (
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)
READ_POOL_SIZE = 4
WAL_SWITCH_ATTEMPTS = 200
WAL_SWITCH_PAUSE_S = 0.01

log = logging.getLogger("flowhook.store")


class WriteLock:
    """An exclusive lock (flock on a file beside the database) held across each write transaction.

    Several `serve --workers` processes write one SQLite file. A writer that
    finds SQLite's own lock taken sleeps and polls in growing steps (1, 2, 5,
    10, … 100 ms), and with the other processes committing back to back it
    waited hundreds of milliseconds (the p99 of `--workers 2`). A process
    waiting on flock sleeps in the kernel and wakes when the lock is released.
    SQLite's lock still does the excluding; this only orders the waiters.
    """

    def __init__(self, path: Path) -> None:
        self._descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._descriptor, fcntl.LOCK_EX)

    def __exit__(self, *exc_info: object) -> None:
        fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._descriptor)


@dataclass(frozen=True)
class Engines:
    """`write` has one connection (one writer per process); `read` a small pool.

    `flush` makes committed transactions durable when COMMIT alone does not;
    `write_lock` is held around each write transaction when other processes may write too.
    """

    write: Engine
    read: Engine
    flush: WalFlush | None = None
    write_lock: WriteLock | None = None

    def dispose(self) -> None:
        self.write.dispose()
        if self.read is not self.write:
            self.read.dispose()
        if self.write_lock is not None:
            self.write_lock.close()


def database_url(database: str | None, data_dir: Path) -> URL:
    """The driver URL for `--database` (or the embedded SQLite file in `data_dir`)."""
    if not database:
        return make_url(f"sqlite:///{Path(data_dir).resolve() / 'flowhook.db'}")
    url = make_url(database)
    if url.drivername in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+psycopg")
    return url


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engines(url: URL) -> Engines:
    common: dict[str, Any] = {
        "json_serializer": _json_serializer,
        "json_deserializer": orjson.loads,
        # A failed statement's error would otherwise quote its parameters: signing secrets, secret hashes.
        "hide_parameters": True,
    }
    if url.get_backend_name() != "sqlite":
        engine = sa.create_engine(url, pool_size=READ_POOL_SIZE + 1, pool_pre_ping=True, **common)
        return Engines(write=engine, read=engine)
    # Connections move between threads (reads run in a pool), never used by two at once.
    connect_args = {"isolation_level": None, "check_same_thread": False}
    write = sa.create_engine(
        url, pool_size=1, max_overflow=0, pool_reset_on_return=None, connect_args=connect_args, **common
    )
    read = sa.create_engine(url, pool_size=READ_POOL_SIZE, max_overflow=0, connect_args=connect_args, **common)
    _configure_sqlite(write, "BEGIN IMMEDIATE")
    _configure_sqlite(read, "BEGIN")
    if not url.database or url.database == ":memory:":
        return Engines(write=write, read=read)
    database = Path(url.database)
    lock = WriteLock(database.with_name(database.name + "-writer.lock"))
    flush = WalFlush(database)
    sa.event.listen(write, "connect", flush.connected)  # after `_configure_sqlite`'s: the log is open by then
    return Engines(write=write, read=read, flush=flush, write_lock=lock)


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL (persistent, so only its first opener changes it).

    Processes opening a new database together race for the switch, and the
    loser gets "database is locked" at once: SQLite does not call the busy
    handler for a journal-mode change. It is retried until the winner is done.
    """
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
            time.sleep(WAL_SWITCH_PAUSE_S)


def _configure_sqlite(engine: Engine, begin: str) -> None:
    """Apply the pragmas on connect and take over BEGIN from the driver."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        _enable_wal(cursor)
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


class WalFlush:
    """fsync of the database's write-ahead log: the file, whichever descriptor wrote it, of the database now
    at the path; and the check, before each write transaction, that the files are still those.

    While a connection is open SQLite keeps the log where it is: checkpoints
    rewind or truncate it in place, and only the last connection to close
    deletes it (tests/store/test_wal_flush.py shows both). This process's
    write connection stays open, so a log missing from its path, or another
    file there than the one this connection opened (`connected`), means the
    data directory was deleted, replaced or tampered with meanwhile; so does
    a database file missing or replaced (the log left in place). SQLite goes
    on committing into the files it holds open, which are no longer the
    database's: fsyncing the path would prove nothing, so the flush raises
    (OSError) and the writes it covers are not acknowledged. So does the one
    legitimate absence, the write connection lost with no other open: in
    doubt, a 503 (store.writer.NotDurable) rather than an acknowledgement.

    The flush comes after COMMIT, too late for a database replaced with its
    log left in place: the commit went into that log, where connections
    opened since (the executor's reads, the next start) read it over the
    other file, so a write refused after it was in fact kept, and a backup
    restored over the file was overwritten by it. So each write transaction
    is first checked (`verify`): while either file at its path is not the one
    opened, every write is refused before it begins, so until a restart
    opens the files then in place (a replacement between the check and the
    COMMIT, microseconds, is still only caught by the flush). Each check
    costs a `stat` or two (~2 µs each, against ~50 µs for the fsync of a log
    with nothing to write back, milliseconds with).
    """

    def __init__(self, database: Path) -> None:
        self._database = database
        self._path = database.with_name(database.name + "-wal")
        self._opened: tuple[int, int] | None = None  # (st_dev, st_ino) of the write connection's database
        self._log: tuple[int, int] | None = None  # and of its log
        self._noted: str | None = None  # what `verify` last found wrong, for its log lines

    def connected(self, *_connect_event: object) -> None:
        """The write engine opened a connection: its files are those now at the paths (a new database has
        no log before its first write; the first flush then takes the one it finds)."""
        self._opened = _found(self._database)  # None, gone already: every flush fails
        self._log = _found(self._path)

    def verify(self) -> None:
        """Before a write transaction, on the write connection: raise NotDurable if the database or its log at
        the path is not the file the connection opened. A replaced file is not coming back; a directory moved
        away and back (the same files) is writable again."""
        problem = self._mismatch()
        if problem != self._noted:  # a line when it starts, one when it ends
            if problem is None:
                log.warning("the database's files are in place again: writes resume")
            else:
                log.error("%s under this process: writes are refused until a restart", problem)
            self._noted = problem
        if problem is not None:
            raise NotDurable(f"{problem}; writes are refused until a restart")

    def _mismatch(self) -> str | None:
        if _found(self._database) != self._opened:
            return f"the database file {self._database} was deleted or replaced"
        if self._log is not None and _found(self._path) != self._log:
            return f"the write-ahead log {self._path} was deleted or replaced"
        return None

    def __call__(self) -> None:
        descriptor = os.open(self._path, os.O_RDONLY)  # FileNotFoundError: the log is gone
        try:
            if self._log is None:  # the database's first write made it
                self._log = _identity(os.fstat(descriptor))
            problem = self._mismatch()  # replaced since `verify`, between it and the COMMIT
            if problem is not None:
                raise OSError(errno.ESTALE, problem)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _found(path: Path) -> tuple[int, int] | None:
    try:
        return _identity(os.stat(path))
    except FileNotFoundError:
        return None


def _identity(status: os.stat_result) -> tuple[int, int]:
    return status.st_dev, status.st_ino


def fsync_directory(directory: Path) -> None:
    """Make the names of newly created files (database, log) durable too."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
