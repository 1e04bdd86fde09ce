"""Database engines: a write engine and a read engine over one URL.

SQLite (the embedded default) runs in WAL mode with `synchronous=FULL`, so a
commit returns only after the WAL is fsynced: a committed row survives a
kill -9 *and* a power cut (on a disk that honours fsync). The group-commit
writer (store.writer) amortises that fsync over many requests. Writes use
`BEGIN IMMEDIATE` so a write transaction holds SQLite's write lock from its
first statement: no stale-snapshot upgrades, and several processes on one
file serialise cleanly (`busy_timeout` makes them wait instead of failing).

PostgreSQL needs none of this; the same queries run there through asyncpg.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)


@dataclass(frozen=True)
class Engines:
    """`write` has one connection (one writer per process); `read` a small pool."""

    write: AsyncEngine
    read: AsyncEngine

    async def dispose(self) -> None:
        await self.write.dispose()
        if self.read is not self.write:
            await self.read.dispose()


def database_url(database: str | None, data_dir: Path) -> URL:
    """The async driver URL for `--database` (or the embedded SQLite file)."""
    if not database:
        return make_url(f"sqlite+aiosqlite:///{data_dir / 'flowhook.db'}")
    url = make_url(database)
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        return url.set(drivername="sqlite+aiosqlite")
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        return url.set(drivername="postgresql+asyncpg")
    return url


def _json_serializer(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engines(url: URL) -> Engines:
    common: dict[str, Any] = {"json_serializer": _json_serializer, "json_deserializer": orjson.loads}
    if url.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_size=10, **common)
        return Engines(write=engine, read=engine)
    write = create_async_engine(url, pool_size=1, max_overflow=0, connect_args={"isolation_level": None}, **common)
    read = create_async_engine(url, pool_size=4, max_overflow=4, connect_args={"isolation_level": None}, **common)
    _configure_sqlite(write, "BEGIN IMMEDIATE")
    _configure_sqlite(read, "BEGIN")
    return Engines(write=write, read=read)


def _configure_sqlite(engine: AsyncEngine, begin: str) -> None:
    """Apply the pragmas on connect and take over BEGIN from the driver."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)
