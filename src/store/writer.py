"""Group commit: many concurrent writes, one transaction, one fsync.

Every write in the process goes through one `GroupCommitWriter`. Callers
`await submit(apply, item)`; the writer collects whatever has queued while the
previous commit was in flight, applies it in one transaction (one `apply`
call per kind of write, with all its items, so a batch of accepted webhooks
is a handful of statements) and resolves each caller's future only after
COMMIT returned. An HTTP handler that answers after `submit` therefore never
acknowledges anything that is not durable.

If a batch fails, it is rolled back and each item is retried alone, so one bad
write fails only its own caller. Ad-hoc writes (`run`) each get a SAVEPOINT,
so one that raises fails alone without undoing its batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")
Item = TypeVar("Item")

#: Applies a list of items inside an open transaction; returns one result per item.
BatchApply = Callable[[AsyncConnection, list[Any]], Awaitable[list[Any]]]

log = logging.getLogger("flowhook.store")


@dataclass
class _Pending:
    apply: BatchApply
    item: Any
    future: asyncio.Future[Any]


class WriterClosed(RuntimeError):
    """The writer was closed before the write could be made."""


class GroupCommitWriter:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = 512) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # commits made; lets tests and benchmarks see the grouping

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flowhook-group-commit")

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def submit(self, apply: BatchApply, item: Any) -> Any:
        """Queue `item` for `apply`; return its result once committed."""
        if self._task is None or self._task.done():
            raise WriterClosed("the store writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(apply, item, future))
        return await future

    async def run(self, operation: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run one ad-hoc write (management API) in the next group."""
        result: T = await self.submit(_run_each, operation)
        return result

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            batch: list[_Pending] = []
            if first is None:
                stopping = True
            else:
                batch.append(first)
            while len(batch) < self._max_batch and not self._queue.empty():
                pending = self._queue.get_nowait()
                if pending is None:
                    stopping = True
                else:
                    batch.append(pending)
            if batch:
                await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self._apply(batch)
        except Exception as error:  # noqa: BLE001 - each caller gets its own outcome below
            if len(batch) == 1:
                _settle(batch[0].future, error=error)
                return
            log.warning("group commit of %d writes failed (%s); retrying one by one", len(batch), error)
            for pending in batch:
                await self._commit([pending])
            return
        self.batches += 1
        for pending, result in zip(batch, results):
            if isinstance(result, _Failed):
                _settle(pending.future, error=result.error)
            else:
                _settle(pending.future, result=result)

    async def _apply(self, batch: list[_Pending]) -> list[Any]:
        """One transaction: each kind of write applied to all its items, kinds in order of arrival."""
        groups: dict[BatchApply, list[int]] = {}
        for index, pending in enumerate(batch):
            groups.setdefault(pending.apply, []).append(index)
        results: list[Any] = [None] * len(batch)
        async with self._engine.begin() as conn:
            for apply, indexes in groups.items():
                outcomes = await apply(conn, [batch[i].item for i in indexes])
                for index, outcome in zip(indexes, outcomes):
                    results[index] = outcome
        return results


@dataclass
class _Failed:
    error: Exception


async def _run_each(conn: AsyncConnection, operations: list[Callable[[AsyncConnection], Awaitable[Any]]]) -> list[Any]:
    results: list[Any] = []
    for operation in operations:
        try:
            async with conn.begin_nested():
                results.append(await operation(conn))
        except Exception as error:  # noqa: BLE001 - handed to that caller only
            results.append(_Failed(error))
    return results


def _settle(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the caller went away (cancelled); the write stands
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
