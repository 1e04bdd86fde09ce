"""Group commit: many concurrent writes, one transaction, one fsync.

Every write in the process goes through one `GroupCommitWriter`. Callers
`await submit(apply, item)`; the writer collects whatever has queued while the
previous transaction was in flight and applies it in one transaction on its
own thread (one `apply` call per kind of write, with all its items, so a
batch of accepted webhooks is a handful of statements). Each caller's future
resolves only once that transaction is durable, so an HTTP handler that
answers after `submit` never acknowledges anything a crash could take back.

Durability is either COMMIT itself (PostgreSQL) or COMMIT followed by a
`flush` (SQLite: fsync of the write-ahead log, see store.engine). Flushes run
on a thread of their own and overlap the next batch's transaction: batch N+1
is written while batch N's fsync is under way, and one fsync covers every
batch committed before it started.

If a batch fails, it is rolled back and each item is retried alone, so one bad
write fails only its own caller. Ad-hoc writes (`run`) each get a SAVEPOINT,
so one that raises fails alone without undoing its batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

#: Applies a list of items inside an open transaction; returns one result per item.
BatchApply = Callable[[Connection, list[Any]], list[Any]]

#: Makes every committed transaction durable (blocking).
Flush = Callable[[], None]

log = logging.getLogger("flowhook.store")


@dataclass
class _Pending:
    apply: BatchApply
    item: Any
    future: asyncio.Future[Any]


@dataclass
class _Failed:
    error: BaseException


class WriterClosed(RuntimeError):
    """The writer was closed before the write could be made."""


class GroupCommitWriter:
    def __init__(self, engine: Engine, *, max_batch: int = 512, flush: Flush | None = None) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._flush = flush
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._committed: list[tuple[_Pending, Any]] = []  # awaiting a flush
        self._commit_seen = asyncio.Event()
        self._writing_done = False
        self._tasks: list[asyncio.Task[None]] = []
        self._threads: ThreadPoolExecutor | None = None
        self.batches = 0  # transactions committed; lets tests and benchmarks see the grouping

    def start(self) -> None:
        self._writing_done = False
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="flowhook-writer")  # commit, flush
        self._tasks = [asyncio.create_task(self._write(), name="flowhook-group-commit")]
        if self._flush is not None:
            self._tasks.append(asyncio.create_task(self._flush_loop(), name="flowhook-wal-flush"))

    async def close(self) -> None:
        """Commit and flush what is queued, then stop."""
        if not self._tasks:
            return
        self._queue.put_nowait(None)
        await asyncio.gather(*self._tasks)
        self._tasks = []
        if self._threads is not None:
            self._threads.shutdown()
            self._threads = None

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not self._tasks[0].done()

    async def submit(self, apply: BatchApply, item: Any) -> Any:
        """Queue `item` for `apply`; return its result once durable."""
        if not self.running:
            raise WriterClosed("the store writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(apply, item, future))
        return await future

    async def run(self, operation: Callable[[Connection], T]) -> T:
        """Run one ad-hoc write (management API) in the next group."""
        result: T = await self.submit(_run_each, operation)
        return result

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            batch: list[_Pending] = []
            pending = await self._queue.get()
            while True:
                if pending is None:
                    stopping = True
                else:
                    batch.append(pending)
                if len(batch) >= self._max_batch or self._queue.empty():
                    break
                pending = self._queue.get_nowait()
            if batch:
                items = [(pending.apply, pending.item) for pending in batch]
                outcomes = await loop.run_in_executor(self._threads, self._commit, items)
                self._release(list(zip(batch, outcomes)))
        self._writing_done = True
        self._commit_seen.set()  # lets the flush loop finish

    def _commit(self, items: list[tuple[BatchApply, Any]]) -> list[Any]:
        """On the writer thread: each item's result (or `_Failed`), once committed."""
        try:
            results = self._apply(items)
        except Exception as error:  # noqa: BLE001 - each caller gets its own outcome below
            if len(items) == 1:
                return [_Failed(error)]
            log.warning("group commit of %d writes failed (%s); retrying one by one", len(items), error)
            return [outcome for item in items for outcome in self._commit([item])]
        self.batches += 1
        return results

    def _apply(self, items: list[tuple[BatchApply, Any]]) -> list[Any]:
        """One transaction: each kind of write applied to all its items, kinds in order of arrival."""
        groups: dict[BatchApply, list[int]] = {}
        for index, (apply, _) in enumerate(items):
            groups.setdefault(apply, []).append(index)
        results: list[Any] = [None] * len(items)
        with self._engine.begin() as conn:
            for apply, indexes in groups.items():
                outcomes = apply(conn, [items[i][1] for i in indexes])
                for index, outcome in zip(indexes, outcomes):
                    results[index] = outcome
        return results

    def _release(self, outcomes: list[tuple[_Pending, Any]]) -> None:
        if self._flush is None:
            _settle_all(outcomes)
            return
        self._committed += outcomes
        self._commit_seen.set()

    async def _flush_loop(self) -> None:
        assert self._flush is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._commit_seen.wait()
            self._commit_seen.clear()
            ready, self._committed = self._committed, []
            if ready:
                try:
                    await loop.run_in_executor(self._threads, self._flush)
                except OSError as error:  # not durable: nobody may be told it is
                    log.error("flushing the write-ahead log failed: %s", error)
                    ready = [(pending, _Failed(error)) for pending, _ in ready]
                _settle_all(ready)
            if self._writing_done and not self._committed:
                return


def _run_each(conn: Connection, operations: list[Callable[[Connection], Any]]) -> list[Any]:
    results: list[Any] = []
    for operation in operations:
        try:
            with conn.begin_nested():
                results.append(operation(conn))
        except Exception as error:  # noqa: BLE001 - handed to that caller only
            results.append(_Failed(error))
    return results


def _settle_all(outcomes: list[tuple[_Pending, Any]]) -> None:
    for pending, outcome in outcomes:
        if pending.future.done():  # the caller went away (cancelled); the write stands
            continue
        if isinstance(outcome, _Failed):
            pending.future.set_exception(outcome.error)
        else:
            pending.future.set_result(outcome)
