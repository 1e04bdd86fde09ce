"""Bounded request log: prune each trigger's entries to the newest N, in the background.

Requests only note which triggers they logged to; a background task prunes
those every `interval` seconds, so the hot path never pays for deletes. It
deletes in transactions of at most `PRUNE_CHUNK` rows: a busy minute leaves
hundreds of thousands of entries over the limit, and deleting them in one
transaction held the store's single writer, and every webhook waiting for a
commit, for seconds.
"""

from __future__ import annotations

import asyncio
import logging

from store import Store
from store.request_log import logged_trigger_ids, prune

log = logging.getLogger("flowhook.ingress")

PRUNE_CHUNK = 500  # rows per transaction: ~5 ms of the writer, however large the backlog (store.request_log.prune)


class RequestLogRetention:
    def __init__(self, store: Store, keep: int, interval_seconds: float, chunk: int = PRUNE_CHUNK) -> None:
        self._store = store
        self._keep = keep
        self._interval = interval_seconds
        self._chunk = chunk
        self._dirty: set[str | None] = set()
        self._task: asyncio.Task[None] | None = None

    def note(self, trigger_id: str | None) -> None:
        self._dirty.add(trigger_id)

    async def prune_all(self) -> int:
        """Prune every trigger's log (at start, and on demand)."""
        trigger_ids = await self._store.read(logged_trigger_ids)
        return await self._prune(trigger_ids)

    async def prune_noted(self) -> int:
        """Prune the triggers logged to since the last run."""
        trigger_ids, self._dirty = self._dirty, set()
        return await self._prune(trigger_ids) if trigger_ids else 0

    async def _prune(self, trigger_ids: list[str | None] | set[str | None]) -> int:
        """Chunk after chunk, each its own write, so webhook commits go on in between."""
        keep, chunk, total = self._keep, self._chunk, 0
        while True:
            deleted = await self._store.write(lambda conn: prune(conn, trigger_ids, keep, chunk))
            total += deleted
            if deleted < chunk:
                return total

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flowhook-request-log-retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.prune_noted()
            except Exception:  # noqa: BLE001 - retention must not die; it retries next round
                log.exception("pruning the request log failed")
