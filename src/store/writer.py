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
batch committed before it started. A flush that fails fails every write it
covers with `NotDurable`: committed, perhaps, but nobody may be told so.
Before each transaction `verify` may refuse it the same way, uncommitted
(SQLite's files replaced under the process, store.engine.WalFlush.verify).

If a batch fails, it is rolled back and each item is retried alone, so one bad
write fails only its own caller. Ad-hoc writes (`run`) each get a SAVEPOINT,
so one that raises fails alone without undoing its batch; but a deadlock or
serialization failure (PostgreSQL, another process's transaction) fails the
whole batch, whose locks may be what the other transaction waits for, and a
write that meets one alone is tried again (ATTEMPTS in all). So is a write
alone that meets a unique violation: on PostgreSQL another process may have
committed the same key after this transaction read it (two `serve`
processes accepting one `flowInvocationId`), and the new transaction sees
that row, so the write decides about it (a duplicate, or a conflict).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine

T = TypeVar("T")

#: Applies a list of items inside an open transaction; returns one result per item.
BatchApply = Callable[[Connection, list[Any]], list[Any]]

#: Makes every committed transaction durable (blocking).
Flush = Callable[[], None]

log = logging.getLogger("flowhook.store")

#: PostgreSQL's deadlock_detected and serialization_failure: the same write, in a new transaction, may succeed.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
#: unique_violation: a row another transaction committed meanwhile, which a new transaction sees and decides on.
UNIQUE_VIOLATION = "23505"
ATTEMPTS = 3  # of a write alone that fails with one of them


@dataclass
class _Pending:
    apply: BatchApply
    item: Any
    future: asyncio.Future[Any]


@dataclass
class _Failed:
    error: BaseException


_Outcomes = list[tuple[_Pending, Any]]


class WriterClosed(RuntimeError):
    """The writer was closed before the write could be made."""


class NotDurable(OSError):
    """The write was committed but the flush that makes it durable failed (a failing disk, the data directory
    gone): not acknowledged. The store failing, like a lost connection (503 `store_unavailable`), not a bug."""


class GroupCommitWriter:
    """Two threads of its own: one commits batches, one flushes them.

    Work reaches them through thread-safe queues and comes back to the event
    loop once per flush, not through an executor hop per step: under load the
    event loop holds the GIL nearly all the time, and each hop cost a wait
    for it.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 512,
        flush: Flush | None = None,
        lock: AbstractContextManager[Any] | None = None,
        verify: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._flush = flush
        self._verify = verify  # raises NotDurable when no write may begin (store.engine.WalFlush.verify)
        self._lock = lock or nullcontext()  # held around each transaction (store.engine.WriteLock)
        self._incoming: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._committed: queue.SimpleQueue[_Outcomes | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._accepting = False
        self._flush_failed_at: float | None = None  # time.monotonic() of the last failure, None once one works
        self.batches = 0  # transactions committed; lets tests and benchmarks see the grouping

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._incoming, self._committed = queue.SimpleQueue(), queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._write, name="flowhook-writer", daemon=True)]
        if self._flush is not None:
            self._threads.append(threading.Thread(target=self._flush_committed, name="flowhook-wal-flush", daemon=True))
        for thread in self._threads:
            thread.start()
        self._accepting = True

    async def close(self) -> None:
        """Commit and flush what is queued, then stop."""
        if not self._threads:
            return
        self._accepting = False
        self._incoming.put(None)
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        self._threads = []

    def flush_failed_within(self, seconds: float) -> bool:
        """Whether a flush failed less than `seconds` ago and none has worked since: writes are being refused
        (NotDurable). Recent, not current: a process no write reaches (a balancer sent its traffic elsewhere)
        flushes nothing, and would otherwise never be seen to work again."""
        return self._flush_failed_at is not None and time.monotonic() - self._flush_failed_at < seconds

    @property
    def running(self) -> bool:
        return self._accepting and self._threads[0].is_alive()  # `_accepting` implies threads

    async def submit(self, apply: BatchApply, item: Any) -> Any:
        """Queue `item` for `apply`; return its result once durable."""
        if not self.running:
            raise WriterClosed("the store writer is not running")
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._incoming.put(_Pending(apply, item, future))
        return await future

    async def run(self, operation: Callable[[Connection], T]) -> T:
        """Run one ad-hoc write (management API) in the next group."""
        result: T = await self.submit(_run_each, operation)
        return result

    def _write(self) -> None:
        """The commit thread: whatever queued while the last transaction ran becomes the next one."""
        stopping = False
        while not stopping:
            batch: list[_Pending] = []
            pending = self._incoming.get()
            while True:
                if pending is None:
                    stopping = True
                else:
                    batch.append(pending)
                if len(batch) >= self._max_batch:
                    break
                try:
                    pending = self._incoming.get_nowait()
                except queue.Empty:
                    break
            if batch:
                outcomes = list(
                    zip(batch, self._commit([(pending.apply, pending.item) for pending in batch]), strict=True)
                )
                if self._flush is None:
                    self._hand_back(outcomes)
                else:
                    self._committed.put(outcomes)
        self._committed.put(None)

    def _flush_committed(self) -> None:
        """The flush thread: one flush covers every batch committed before it started."""
        assert self._flush is not None
        stopping = False
        while not stopping:
            ready: _Outcomes = []
            outcomes = self._committed.get()
            while True:
                if outcomes is None:
                    stopping = True
                else:
                    ready += outcomes
                try:
                    outcomes = self._committed.get_nowait()
                except queue.Empty:
                    break
            if ready:
                self._hand_back(self._flushed(ready))

    def _flushed(self, ready: _Outcomes) -> _Outcomes:
        """`ready` once flushed, or each failed with NotDurable: nobody may be told it is durable. A log line
        when flushes start failing and one when they work again; each caller reports its own failure."""
        assert self._flush is not None
        try:
            self._flush()
        except OSError as error:
            if self._flush_failed_at is None:
                log.error("flushing the write-ahead log failed: %s; writes are refused until it works", error)
            self._flush_failed_at = time.monotonic()
            failure = NotDurable(f"the write-ahead log could not be flushed: {error}")
            failure.__cause__ = error
            return [(pending, _Failed(failure)) for pending, _ in ready]
        if self._flush_failed_at is not None:
            log.warning("flushing the write-ahead log works again")
            self._flush_failed_at = None
        return ready

    def _hand_back(self, outcomes: _Outcomes) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(_settle_all, outcomes)

    def _commit(self, items: list[tuple[BatchApply, Any]], attempt: int = 1) -> list[Any]:
        """On the writer thread: each item's result (or `_Failed`), once committed."""
        try:
            results = self._apply(items)
        except Exception as error:  # noqa: BLE001 - each caller gets its own outcome below
            if isinstance(error, NotDurable):  # the store's, not a write's: each alone would meet it again
                return [_Failed(error)] * len(items)
            if len(items) > 1:
                log.warning("group commit of %d writes failed (%s); retrying one by one", len(items), error)
                return [outcome for item in items for outcome in self._commit([item])]
            if _retryable_alone(error) and attempt < ATTEMPTS:
                log.warning("a write failed (%s); trying it again", error)
                return self._commit(items, attempt + 1)
            return [_Failed(error)]
        self.batches += 1
        return results

    def _apply(self, items: list[tuple[BatchApply, Any]]) -> list[Any]:
        """One transaction: each kind of write applied to all its items, kinds in order of arrival."""
        groups: dict[BatchApply, list[int]] = {}
        for index, (apply, _) in enumerate(items):
            groups.setdefault(apply, []).append(index)
        results: list[Any] = [None] * len(items)
        with self._lock, self._engine.connect() as conn:
            if self._verify is not None:  # on the connection: a new one has told `verify` its files
                self._verify()
            with conn.begin():
                for apply, indexes in groups.items():
                    outcomes = apply(conn, [items[i][1] for i in indexes])
                    for index, outcome in zip(indexes, outcomes, strict=True):
                        results[index] = outcome
        return results


def _run_each(conn: Connection, operations: list[Callable[[Connection], Any]]) -> list[Any]:
    results: list[Any] = []
    for operation in operations:
        try:
            with conn.begin_nested():
                results.append(operation(conn))
        except Exception as error:  # noqa: BLE001 - handed to that caller only
            if _transient(error):
                raise
            results.append(_Failed(error))
    return results


def _sqlstate(error: Exception) -> str | None:
    return getattr(getattr(error, "orig", None), "sqlstate", None)


def _transient(error: Exception) -> bool:
    return _sqlstate(error) in TRANSIENT_SQLSTATES


def _retryable_alone(error: Exception) -> bool:
    return _transient(error) or _sqlstate(error) == UNIQUE_VIOLATION


def _settle_all(outcomes: _Outcomes) -> None:
    for pending, outcome in outcomes:
        if pending.future.done():  # the caller went away (cancelled); the write stands
            continue
        if isinstance(outcome, _Failed):
            pending.future.set_exception(outcome.error)
        else:
            pending.future.set_result(outcome)
