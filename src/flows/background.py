"""A background loop over the store: rounds of work while there is some, a poll while idle.

The executor, the event dispatcher, the bulk runner and the segment
evaluator are such loops. Each round runs one or more write batches; an
idle loop waits `poll_seconds` (reading, so an idle service takes no write
lock) unless `wake()` cuts the wait short. A round that fails was rolled
back and is tried again after a pause that doubles at each failure in a row
(from `poll_seconds` up to `MAX_BACKOFF_SECONDS`, jittered so that the
processes sharing a database do not retry in step), and the streak is
logged without a storm (`FailureStreak`): a store that is down for an hour
costs some 150 attempts and a line a minute, not forty tracebacks a
second. A `wake()` cuts a back-off short too: it comes from work this
process just stored, so the store answers again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from store.writer import WriterClosed

log = logging.getLogger("flowhook.flows")

MAX_BACKOFF_SECONDS = 30.0
#: While failures go on, a line at most this often (the first one of a streak has its traceback).
STILL_FAILING_LOG_SECONDS = 60.0


class FailureStreak:
    """Failures in a row of one background task, logged without a storm.

    The first is an error with its traceback; the next ones a warning at
    most every STILL_FAILING_LOG_SECONDS, counting them, without one (it is
    the same failure, as a rule: the store is down); the first success after
    them a warning that it recovered, so the log says when the outage ended.
    """

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._name = name
        self._clock = clock
        self.failures = 0
        self._began = 0.0
        self._logged = 0.0

    def failed(self, error: Exception) -> int:
        """Count (and maybe log) `error`; how many failures in a row this makes."""
        now = self._clock()
        self.failures += 1
        if self.failures == 1:
            self._began = self._logged = now
            log.error("%s failed; retrying (a line a minute while it goes on failing)", self._name, exc_info=error)
        elif now - self._logged >= STILL_FAILING_LOG_SECONDS:
            self._logged = now
            since, reason = now - self._began, failure_reason(error)
            line = "%s still failing: %d attempts in a row in %.0f s (%s)"
            log.warning(line, self._name, self.failures, since, reason)
        return self.failures

    def succeeded(self) -> None:
        if self.failures:
            since = self._clock() - self._began
            log.warning("%s recovered after %d failed attempts over %.0f s", self._name, self.failures, since)
            self.failures = 0


def backoff_seconds(failures: int, base_seconds: float, max_seconds: float = MAX_BACKOFF_SECONDS) -> float:
    """The pause after `failures` failures in a row: base, 2×base, 4×base … up to `max_seconds`, each
    jittered down to as little as half."""
    ceiling = min(base_seconds * 2 ** min(failures - 1, 64), max_seconds)
    return random.uniform(ceiling / 2, ceiling)


class BackgroundLoop:
    def __init__(self, name: str, poll_seconds: float) -> None:
        self._name = name
        self._poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.streak = FailureStreak(name)

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
        """Work is due now: start a round rather than wait for the next poll (or the end of a back-off)."""
        self._wake.set()

    async def _round(self) -> bool:
        """Do what is due now; True to start the next round at once (more is waiting), False to pause."""
        raise NotImplementedError

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                more = await self._round()
            except WriterClosed:
                return
            except Exception as error:  # noqa: BLE001 - keep going; the failed batch was rolled back
                await self._pause(backoff_seconds(self.streak.failed(error), self._poll_seconds))
                continue
            self.streak.succeeded()
            if not more:
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
    (as a `FailureStreak`) and the next one comes at its time."""

    def __init__(self, name: str, interval_seconds: float, run: Callable[[], Awaitable[object]]) -> None:
        self._name = name
        self._interval = interval_seconds
        self._run = run
        self._task: asyncio.Task[None] | None = None
        self.streak = FailureStreak(name)

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
            except Exception as error:  # noqa: BLE001 - a background pass must not die; the next one comes at its time
                self.streak.failed(error)
            else:
                self.streak.succeeded()


#: SQLSTATE classes of PostgreSQL failures of the database rather than of the data written: connection (08),
#: transaction state (25: a standby that was a primary), rollback (40: deadlock, serialization), resources
#: (53: disk full, out of memory), object in use (55: a lock), operator intervention (57: shutdown, cancel),
#: system (58: I/O) and internal errors (XX: corruption). The rest (22 data exception, 23 integrity, 54 program
#: limit exceeded: a value too large for an index, …) fail the same way whenever the same work runs.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "25", "40", "53", "55", "57", "58", "XX"})
#: SQLite's primary result codes for a failure of the database file rather than of the statement: PERM (3),
#: BUSY (5: "database is locked"), LOCKED (6), READONLY (8), IOERR (10: "disk I/O error"), CORRUPT (11),
#: FULL (13), CANTOPEN (14: "unable to open database file"), PROTOCOL (15), NOTADB (26). Python raises an
#: OperationalError for most of them and for SQLITE_ERROR alike, which is what a mistake in a statement or a
#: JSON function meeting bad data gives ("no such column", "malformed JSON"): that one fails every retry.
TRANSIENT_SQLITE_CODES = frozenset({3, 5, 6, 8, 10, 11, 13, 14, 15, 26})
MAX_REASON_CHARS = 500


def transient_failure(error: Exception) -> bool:
    """A failure of the store itself (connection, lock, disk, or its writer closed), which running again
    later may not repeat; not one that the work's own data (or a bug) causes, which would fail every retry.
    The HTTP edge answers the first kind 503 `store_unavailable` (ingress.errors.store_unavailable).

    On PostgreSQL the error's SQLSTATE tells: psycopg raises an OperationalError for a lost connection and
    for a user id too long for an index alike, and taking the second for the first stalled every flow
    behind the item. On SQLite its result code tells. Without either (a connection lost, or refused,
    before the server answered) the kind of error tells.
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
    sqlite_code = getattr(error.orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return sqlite_code & 0xFF in TRANSIENT_SQLITE_CODES  # the primary code of an extended one
    return isinstance(error, sa.exc.OperationalError | sa.exc.InterfaceError)


def failure_reason(error: Exception) -> str:
    """What went wrong, in a line: for a database error the driver's own message (`ProgramLimitExceeded:
    index row size 3056 exceeds btree version 4 maximum 2704 …`), not SQLAlchemy's, which quotes the
    statement and every parameter."""
    cause = error.orig if isinstance(error, sa.exc.DBAPIError) and error.orig is not None else error
    message = str(cause).strip().split("\n", 1)[0]
    reason = f"{type(cause).__name__}: {message}" if message else type(cause).__name__
    return reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"
