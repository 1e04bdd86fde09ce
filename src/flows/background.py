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


def transient_failure(error: Exception) -> bool:
    """A failure of the store itself (connection, lock, disk, or its writer closed), which running again
    later may not repeat."""
    return isinstance(
        error, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError | OSError | WriterClosed
    )
