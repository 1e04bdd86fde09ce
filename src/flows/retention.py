"""Bounded retention of the executor's finished work, pruned in the background.

Every process that runs the executor (`serve`, `flowhook worker`) prunes,
every `interval` seconds, the invocations finished more than `days` ago with
their flow instances (store.invocation_retention), a bounded chunk per
transaction, as the request log's retention does (ingress.retention): one
large delete would hold the store's writer, and every webhook waiting to
commit, for as long as it took. On PostgreSQL the processes take turns
through an advisory lock, so several of them pruning is harmless.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from functools import partial

from store import Store
from store.clock import utcnow
from store.invocation_retention import prune_finished

log = logging.getLogger("flowhook.flows")

PRUNE_CHUNK = 100  # invocations read per transaction (with their instances, ~200 rows deleted): ~8 ms of the writer


class InvocationRetention:
    def __init__(self, store: Store, days: int, interval_seconds: float, chunk: int = PRUNE_CHUNK) -> None:
        self._store = store
        self._period = timedelta(days=days)
        self._interval = interval_seconds
        self._chunk = chunk
        self._task: asyncio.Task[None] | None = None

    async def prune(self, now: datetime | None = None) -> int:
        """Delete everything finished before `now` minus the period, chunk after chunk; rows deleted."""
        cutoff = (utcnow() if now is None else now) - self._period
        after: str | None = ""
        total = 0
        while after is not None:
            chunk = await self._store.write(partial(prune_finished, cutoff=cutoff, after=after, limit=self._chunk))
            total += chunk.deleted
            after = chunk.next_after
        return total

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flowhook-invocation-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.prune()
            except Exception:  # noqa: BLE001 - retention must not die; it retries next round
                log.exception("pruning finished invocations failed")
