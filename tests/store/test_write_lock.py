"""The cross-process write lock: a second holder waits until the first lets go."""

from __future__ import annotations

import threading
from pathlib import Path

from store.engine import WriteLock


def test_a_second_holder_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "flowhook.db-writer.lock"
    first, second = WriteLock(path), WriteLock(path)  # separate descriptors, as in two processes
    entered = threading.Event()

    def take_second() -> None:
        with second:
            entered.set()

    try:
        with first:
            waiter = threading.Thread(target=take_second)
            waiter.start()
            assert not entered.wait(0.2)
        assert entered.wait(10)
        waiter.join()
    finally:
        first.close()
        second.close()
