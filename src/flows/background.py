"""A background loop over the store: rounds of work while there is some, a poll while idle.

The executor and the event dispatcher are both such loops. Each round runs
one or more write batches; an idle loop waits `poll_seconds` (reading, so an
idle service takes no write lock) unless `wake()` cuts the wait short, and a
round that fails is logged and tried again after a pause: the failed batch
was rolled back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from store.writer import WriterClosed

log = logging.getLogger("flowhook.flows")


class BackgroundLoop:
    def __init__(self, name: str, poll_seconds: float) -> None:
        self._name = name
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"flowhook-{self._name}")

    async def close(self) -> None:
        """Finish the round in flight, then stop."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._task
        self._task = None

    def wake(self) -> None:
        """Work is due now: start a round rather than wait for the next poll."""
        self._wake.set()

    async def _round(self) -> bool:
        """Do what is due now; True to start the next round at once (more is waiting), False to pause."""
        raise NotImplementedError

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                if await self._round():
                    continue
            except WriterClosed:
                return
            except Exception:  # noqa: BLE001 - keep going; the failed batch was rolled back
                log.exception("%s batch failed; retrying after a pause", self._name)
            await self._pause(self._poll_seconds)

    async def _pause(self, seconds: float) -> None:
        """Until `seconds` pass or `wake()` is called (at once if it was called meanwhile)."""
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass
        self._wake.clear()


class Periodic:
    """`run()` every `interval` seconds until closed, for the retention passes: a run that fails is logged
    and the next one comes at its time."""

    def __init__(self, name: str, interval_seconds: float, run: Callable[[], Awaitable[object]]) -> None:
        self._name = name
        self._interval = interval_seconds
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"flowhook-{self._name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._run()
            except Exception:  # noqa: BLE001 - a background pass must not die; the next one comes at its time
                log.exception("%s failed", self._name)


#: SQLSTATE classes of PostgreSQL failures of the database rather than of the data written: connection (08),
#: transaction state (25: a standby that was a primary), rollback (40: deadlock, serialization), resources
#: (53: disk full, out of memory), object in use (55: a lock), operator intervention (57: shutdown, cancel),
#: system (58: I/O) and internal errors (XX: corruption). The rest (22 data exception, 23 integrity, 54 program
#: limit exceeded: a value too large for an index, …) fail the same way whenever the same work runs.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "25", "40", "53", "55", "57", "58", "XX"})
MAX_REASON_CHARS = 500


def transient_failure(error: Exception) -> bool:
    """A failure of the store itself (connection, lock, disk, or its writer closed), which running again
    later may not repeat; not one that the work's own data causes, which would fail every retry.

    On PostgreSQL the error's SQLSTATE tells: psycopg raises an OperationalError for a lost connection and
    for a user id too long for an index alike, and taking the second for the first stalled every flow
    behind the item. Without one (SQLite, a connection lost before the server answered) the kind of error
    tells.
    """
    if isinstance(error, WriterClosed | OSError | sa.exc.TimeoutError):
        return True
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    return isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError)


def failure_reason(error: Exception) -> str:
    """What went wrong, in a line: for a database error the driver's own message (`ProgramLimitExceeded:
    index row size 3056 exceeds btree version 4 maximum 2704 …`), not SQLAlchemy's, which quotes the
    statement and every parameter."""
    cause = error.orig if isinstance(error, sa.exc.DBAPIError) and error.orig is not None else error
    message = str(cause).strip().split("\n", 1)[0]
    reason = f"{type(cause).__name__}: {message}" if message else type(cause).__name__
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"
