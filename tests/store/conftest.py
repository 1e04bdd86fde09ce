"""Fixtures of the store's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Connection

#: `steps(conn, work)`: `work(conn)`'s result and the SQLite virtual-machine steps it took.
StepCounter = Callable[[Connection, Callable[[Connection], Any]], tuple[Any, int]]


def _counting_steps(conn: Connection, work: Callable[[Connection], Any]) -> tuple[Any, int]:
    driver = conn.connection.driver_connection
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0  # go on

    driver.set_progress_handler(tick, 10)
    try:
        return work(conn), ticks[0] * 10
    finally:
        driver.set_progress_handler(None, 0)


@pytest.fixture
def vm_steps() -> StepCounter:
    """Counts what a statement walks in SQLite's steps, the same on a fast machine or a slow one: a test can
    say that a chunk's work does not grow with the backlog without timing anything."""
    return _counting_steps
