"""Background loops while the store fails: a back-off, a quiet log, and which failures count as the store's.

A loop whose store is down used to try again every `poll_seconds` (0.1 s for
the executor and the event dispatcher) and log a traceback each time: forty
a second. These drive `BackgroundLoop` and `Periodic` with rounds that fail,
recording the pauses the loop asks for rather than waiting them out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flows.background import (
    MAX_BACKOFF_SECONDS,
    STILL_FAILING_LOG_SECONDS,
    BackgroundLoop,
    FailureStreak,
    Periodic,
    transient_failure,
)
from flows.segment_evaluation import SegmentEvaluator, SegmentEvaluatorConfig
from store import Store, customers, segments, tables
from store.clock import utcnow

pytestmark = pytest.mark.anyio

POLL = 0.1


def refused() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


class Flaky(BackgroundLoop):
    """Fails its first `failures` rounds, then succeeds once and stops; records every pause asked for."""

    def __init__(self, failures: int) -> None:
        super().__init__("flaky", POLL)
        self.failures = failures
        self.pauses: list[float] = []

    async def _round(self) -> bool:
        if self.failures:
            self.failures -= 1
            raise refused()
        self._stopping = True
        return False

    async def _pause(self, seconds: float) -> None:
        self.pauses.append(seconds)


def streak_records(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage().startswith(name)]


async def test_consecutive_failures_back_off_exponentially_up_to_the_cap(caplog: pytest.LogCaptureFixture) -> None:
    loop = Flaky(failures=20)
    with caplog.at_level(logging.WARNING, logger="flowhook.flows"):
        await loop._loop()
    failed, idle = loop.pauses[:20], loop.pauses[20:]
    for attempt, pause in enumerate(failed):
        ceiling = min(POLL * 2**attempt, MAX_BACKOFF_SECONDS)
        assert ceiling / 2 <= pause <= ceiling, (attempt, pause)
    assert max(failed) > MAX_BACKOFF_SECONDS / 2  # it got there
    assert idle == [POLL]  # the round after the outage worked: back to polling
    first, recovered = streak_records(caplog, "flaky")  # not one line per failure
    assert first.levelno == logging.ERROR and first.exc_info is not None
    assert recovered.getMessage().startswith("flaky recovered after 20 failed attempts over ")
    assert recovered.exc_info is None


async def test_a_wake_cuts_a_back_off_short() -> None:
    """Work this process just stored is news that the store answers again."""

    class Sleeper(BackgroundLoop):
        async def _round(self) -> bool:
            raise refused()

    loop = Sleeper("sleeper", poll_seconds=3600.0)  # its first back-off alone would outlast the test
    loop.start()
    while not loop.streak.failures:
        await asyncio.sleep(0.01)
    loop.wake()
    while loop.streak.failures < 2:
        await asyncio.sleep(0.01)
    await loop.close()


def test_a_streak_logs_its_first_failure_then_a_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    streak = FailureStreak("executor", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="flowhook.flows"):
        for _ in range(600):  # ten minutes of failures, one a second
            streak.failed(refused())
            now[0] += 1.0
        streak.succeeded()
    records = streak_records(caplog, "executor")
    assert [record.levelno for record in records] == [logging.ERROR] + [logging.WARNING] * 10
    assert [record.exc_info is not None for record in records] == [True] + [False] * 10
    assert records[1].getMessage() == (
        f"executor still failing: 61 attempts in a row in {STILL_FAILING_LOG_SECONDS:.0f} s "
        "(ConnectionRefusedError: connection refused)"
    )
    assert records[-1].getMessage() == "executor recovered after 600 failed attempts over 600 s"
    assert streak.failures == 0


async def test_a_periodic_pass_that_keeps_failing_logs_one_traceback(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0

    async def run() -> None:
        nonlocal runs
        runs += 1
        raise refused()

    passes = Periodic("retention", 0.001, run)
    with caplog.at_level(logging.WARNING, logger="flowhook.flows"):
        passes.start()
        while runs < 20:
            await asyncio.sleep(0.001)
        await passes.close()
    [only] = streak_records(caplog, "retention")
    assert only.exc_info is not None


def sqlite_error(database: Path, statement: str) -> Exception:
    engine = sa.create_engine(f"sqlite:///{database}", connect_args={"timeout": 0})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(statement))
    except sa.exc.DBAPIError as error:
        return error
    finally:
        engine.dispose()
    raise AssertionError(f"{statement} did not fail")


def test_sqlite_failures_of_the_file_are_the_stores_and_mistakes_in_a_statement_are_not(tmp_path: Path) -> None:
    """Python raises sqlite3.OperationalError for a locked or unopenable file and for a bad statement alike:
    SQLite's result code tells them apart."""
    assert transient_failure(sqlite_error(tmp_path / "gone" / "flowhook.db", "SELECT 1"))  # SQLITE_CANTOPEN
    assert not transient_failure(sqlite_error(tmp_path / "flowhook.db", "SELECT * FROM no_such_table"))  # ERROR
    assert not transient_failure(sqlite_error(tmp_path / "flowhook.db", "SELECT json_extract('{', '$.a')"))
    holder = sa.create_engine(f"sqlite:///{tmp_path / 'flowhook.db'}", isolation_level="AUTOCOMMIT")
    with holder.connect() as conn:
        conn.exec_driver_sql("BEGIN EXCLUSIVE")
        assert transient_failure(sqlite_error(tmp_path / "flowhook.db", "SELECT * FROM sqlite_master"))  # BUSY
        conn.exec_driver_sql("ROLLBACK")
    holder.dispose()


async def test_a_segment_chunk_the_store_failed_is_not_put_off(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluator used to put the evaluation off (a write: failing too while the store is down) and log a
    traceback for the segment; it is the loop's back-off that waits now, and the evaluation goes on after."""
    for user in ("a", "b", "c"):
        await store.write(lambda conn, user=user: customers.put_customer(conn, "default", user, {"plan": "pro"}))
    rules = {"all": [{"attribute": "plan", "op": "in", "value": ["pro"]}]}
    await store.write(lambda conn: segments.insert_segment(conn, "default", "Paying", rules))
    run_out = sa.update(tables.segments).values(evaluation_lease=utcnow() - timedelta(seconds=1))
    await store.write(lambda conn: conn.execute(run_out))  # as if its creator died: the evaluator takes it over
    write = store.write

    async def unavailable_once(operation: Callable[[Connection], Any]) -> Any:
        monkeypatch.setattr(store, "write", write)
        raise refused()

    monkeypatch.setattr(store, "write", unavailable_once)
    evaluator = SegmentEvaluator(store, SegmentEvaluatorConfig(chunk_size=2))
    with pytest.raises(sa.exc.OperationalError):
        await evaluator.step()
    assert await evaluator.drain() == 2  # a and b, then c and the end: not put off
