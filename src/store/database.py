"""The store as the service uses it: engines, migrations, the group-commit writer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from store.engine import Engines, create_engines
from store.environments import DEFAULT_ENVIRONMENT, ensure_environment
from store.migrations import migrate
from store.writer import BatchApply, GroupCommitWriter

T = TypeVar("T")


class Store:
    """Reads from a small pool; every write through one group-commit writer."""

    def __init__(self, engines: Engines, writer: GroupCommitWriter) -> None:
        self.engines = engines
        self.writer = writer

    @classmethod
    async def open(cls, url: URL, *, max_batch: int = 512) -> Store:
        """Connect, migrate, create the `default` environment, start the writer."""
        if url.get_backend_name() == "sqlite" and url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engines = create_engines(url)
        async with engines.write.begin() as conn:
            await migrate(conn)
            await ensure_environment(conn, DEFAULT_ENVIRONMENT, "Default")
        writer = GroupCommitWriter(engines.write, max_batch=max_batch)
        writer.start()
        return cls(engines, writer)

    async def close(self) -> None:
        await self.writer.close()
        await self.engines.dispose()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engines.read.connect() as conn:
            yield conn

    async def write(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `operation` in a transaction (shared with concurrent writes); return once committed."""
        return await self.writer.run(operation)

    async def submit(self, apply: BatchApply, item: Any) -> Any:
        """Queue a batched write (see store.writer); return its result once committed."""
        return await self.writer.submit(apply, item)
