"""Two PostgreSQL transactions at once, for the races SQLite cannot have (it has one writer): one is held open
while the other runs in a thread until it finishes or waits for a lock, then the first commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine


def while_open(engine: Engine, first: Callable[[Connection], Any], second: Callable[[Connection], Any]) -> Any:
    """`first` in a transaction left open while `second` runs in its own (a thread) until it is done or waits
    for a lock; then `first` commits, and `second`'s result once it is done."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            with engine.connect() as conn:
                outcome["result"] = second(conn)
        except Exception as error:  # noqa: BLE001 - raised below, in the test
            outcome["error"] = error

    with engine.connect() as held, held.begin():
        first(held)
        thread = threading.Thread(target=run)
        thread.start()
        until_done_or_blocked(engine, thread, held)
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def until_done_or_blocked(engine: Engine, thread: threading.Thread, holder: Connection) -> None:
    """Wait until `thread` is done or waits for a lock `holder`'s transaction holds (never the clock: a slow
    machine only waits longer, up to a minute, after which the test fails rather than hangs)."""
    _wait_for_a_blocked_backend(engine, holder, running=thread.is_alive)


def until_blocked(engine: Engine, holder: Connection) -> None:
    """Wait until a backend (a rival the test started some other way) waits for a lock `holder` holds."""
    _wait_for_a_blocked_backend(engine, holder, running=lambda: True)


def _wait_for_a_blocked_backend(engine: Engine, holder: Connection, running: Callable[[], bool]) -> None:
    pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    with engine.connect() as watcher:
        deadline = time.monotonic() + 60
        while running() and not blocked_by(watcher, pid):
            assert time.monotonic() < deadline, "the rival write never blocked on the held transaction"
            time.sleep(0.01)


def blocked_by(conn: Connection, pid: Any) -> bool:
    """Whether a backend waits for a lock backend `pid` holds. Each look in a transaction of its own:
    PostgreSQL keeps a transaction's first snapshot of pg_stat_activity, so a backend that started after it
    would never be seen waiting."""
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    try:
        return bool(conn.execute(query, {"pid": pid}).scalar())
    finally:
        conn.rollback()
