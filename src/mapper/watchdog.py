"""Hold JavaScript to wall-clock time from outside the engine.

QuickJS's own time limit counts process CPU time and is not checked inside a
single native operation (`new Array(1e8).join()` overruns it by seconds). One
daemon thread per process looks at the engines with a call in flight and
trips an overdue one by dropping its memory limit to one byte: the next
allocation throws, which is how long native operations end. Pure loops that
allocate nothing are stopped by the engine's interrupt handler, so the two
together bound both. Where a native operation allocates rarely, only a
process boundary is a hard bound: the worker pool kills such workers.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Protocol


class Trippable(Protocol):
    def set_memory_limit(self, limit: int) -> None: ...


class WatchSlot:
    """Per-engine deadline; `deadline == 0.0` means no call in flight.

    Setting a deadline is a plain attribute store (cheap on the hot path);
    clearing it takes the lock so a trip can't land on the next call.
    """

    __slots__ = ("context", "deadline", "tripped", "lock", "__weakref__")

    def __init__(self, context: Trippable):
        self.context = context
        self.deadline = 0.0
        self.tripped = False
        self.lock = threading.Lock()

    def clear(self) -> bool:
        """End the call; True when the watchdog tripped it."""
        with self.lock:
            self.deadline = 0.0
            return self.tripped

    def trip_if_overdue(self, now: float) -> None:
        with self.lock:
            if self.deadline and now >= self.deadline and not self.tripped:
                self.tripped = True
                self.context.set_memory_limit(1)


class Watchdog:
    def __init__(self, interval: float = 0.02):
        self._interval = interval
        self._slots: weakref.WeakSet[WatchSlot] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def slot(self, context: Trippable) -> WatchSlot:
        """A slot watched for as long as the caller keeps it."""
        slot = WatchSlot(context)
        with self._lock:
            self._slots.add(slot)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="flowhook-js-watchdog", daemon=True)
                self._thread.start()
        return slot

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            now = time.monotonic()
            with self._lock:
                slots = list(self._slots)
            for slot in slots:
                slot.trip_if_overdue(now)


WATCHDOG = Watchdog()
