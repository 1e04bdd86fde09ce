"""Hold JavaScript to wall-clock time from outside the engine.

QuickJS's own time limit counts process CPU time and is not checked inside a
single native operation (`new Array(1e8).join()` overruns it by seconds). One
daemon thread per process looks at the engines with a call in flight and
trips an overdue one: on alternate ticks its memory limit drops to one byte
(the next allocation throws, which is how long native operations end) and
goes back to normal (so the engine can allocate the uncatchable "interrupted"
error its interrupt handler throws; at one byte that error cannot be built
and a catchable out-of-memory error takes its place, which a `try` in a loop
would swallow for ever). Pure loops are stopped by the interrupt handler.

What stays out of reach in-process: a mapping that fills its memory and
catches every failure in a loop leaves the engine no memory to build the
interrupt. Only a process boundary is a hard bound: the worker pool kills
such workers, which is why the service runs JavaScript there.

The watchdog holds engines weakly and never lets go of the last reference to
one: a QuickJS runtime freed on a thread other than its own keeps its whole
heap (its garbage collector does not run there), up to the memory limit per
discarded engine.
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

    __slots__ = ("engine", "memory_limit", "deadline", "tripped", "starved", "lock", "__weakref__")

    def __init__(self, engine: Trippable, memory_limit: int):
        self.engine = weakref.ref(engine)
        self.memory_limit = memory_limit
        self.deadline = 0.0
        self.tripped = False
        self.starved = False
        self.lock = threading.Lock()

    def clear(self) -> bool:
        """End the call; True when the watchdog tripped it (the engine must go)."""
        with self.lock:
            self.deadline = 0.0
            return self.tripped

    def trip_if_overdue(self, now: float) -> None:
        with self.lock:
            if self.deadline and now >= self.deadline:
                # A deadline means a call in flight, whose thread holds the engine
                # and waits for the lock to end the call: this reference is never the last.
                engine = self.engine()
                if engine is not None:
                    self.tripped = True
                    self.starved = not self.starved
                    engine.set_memory_limit(1 if self.starved else self.memory_limit)
                del engine


class Watchdog:
    def __init__(self, interval: float = 0.02):
        self._interval = interval
        self._slots: weakref.WeakSet[WatchSlot] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def slot(self, engine: Trippable, memory_limit: int) -> WatchSlot:
        """A slot watched for as long as the caller keeps it (the slot holds `engine` weakly)."""
        slot = WatchSlot(engine, memory_limit)
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
