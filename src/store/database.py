"""The store as the service uses it: engines, migrations, the group-commit writer.

Store functions (store.flows, store.triggers, …) are plain synchronous
SQLAlchemy Core over a `Connection`; the service calls them through `read`
(a thread from a small pool) and `write`/`submit` (the writer's thread), so
the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import URL, Connection

from store.engine import READ_POOL_SIZE, Engines, create_engines, fsync_directory
from store.environments import DEFAULT_ENVIRONMENT, create_environment
from store.migrations import migrate
from store.writer import BatchApply, GroupCommitWriter, NotDurable

T = TypeVar("T")


class Store:
    """Reads from a small pool; every write through one group-commit writer."""

    def __init__(self, engines: Engines, writer: GroupCommitWriter) -> None:
        self.engines = engines
        self.writer = writer
        self._readers = ThreadPoolExecutor(READ_POOL_SIZE, thread_name_prefix="flowhook-reader")

    @classmethod
    async def open(cls, url: URL, *, max_batch: int = 512, fsync: bool = True) -> Store:
        """Connect, migrate, create the `default` environment, start the writer.

        `fsync=False` acknowledges SQLite writes at COMMIT: they survive a
        crash of this process (the OS holds them), not of the machine.
        """
        engines = await asyncio.to_thread(_prepare, url)
        flush = engines.flush if fsync else None
        verify = engines.flush.verify if engines.flush is not None else None
        writer = GroupCommitWriter(
            engines.write, max_batch=max_batch, flush=flush, lock=engines.write_lock, verify=verify
        )
        writer.start()
        return cls(engines, writer)

    async def close(self) -> None:
        await self.writer.close()
        self._readers.shutdown()
        self.engines.dispose()

    def files_in_place(self) -> bool:
        """Whether the database's files at their paths are those this process writes (store.engine.WalFlush):
        once one is deleted or replaced, every write is refused until a restart."""
        if self.engines.flush is None:
            return True
        try:
            self.engines.flush.verify()
        except NotDurable:
            return False
        return True

    async def read(self, query: Callable[[Connection], T]) -> T:
        """Run `query` on a read connection (its own transaction) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, query)

    def _read(self, query: Callable[[Connection], T]) -> T:
        with self.engines.read.connect() as conn:
            return query(conn)

    async def write(self, operation: Callable[[Connection], T]) -> T:
        """Run `operation` in a transaction (shared with concurrent writes); return once durable."""
        return await self.writer.run(operation)

    async def submit(self, apply: BatchApply, item: Any) -> Any:
        """Queue a batched write (see store.writer); return its result once durable."""
        return await self.writer.submit(apply, item)


def _prepare(url: URL) -> Engines:
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engines = create_engines(url)
    with engines.write.begin() as conn:
        migrate(conn)
        create_environment(conn, DEFAULT_ENVIRONMENT, "Default")
    if engines.flush is not None and url.database:
        engines.flush()
        fsync_directory(Path(url.database).parent)  # the new files' names
    return engines
