"""Bounded per-trigger logs (the request log, event deliveries): prune each trigger's rows to the newest N,
in the background.

Requests (and settled event deliveries) only note their triggers; a background task prunes
those every `interval` seconds, so the hot path never pays for deletes. It
deletes in transactions of at most `PRUNE_CHUNK` rows: a busy minute leaves
hundreds of thousands of entries over the limit, and deleting them in one
transaction held the store's single writer, and every webhook waiting for a
commit, for seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from flows.background import Periodic
from store import Store, event_deliveries, request_log

PRUNE_CHUNK = 500  # rows per transaction: ~5 ms of the writer, however large the backlog (store.request_log.prune)


@dataclass(frozen=True)
class PrunedLog:
    """A per-trigger log and how to prune it (store.pruning)."""

    name: str  # names its task and its log lines
    prune: Callable[[Connection, Iterable[str | None], int, int], int]  # (conn, triggers, keep, limit) -> deleted
    trigger_ids: Callable[[Connection], list[str | None]]  # every trigger with rows


REQUEST_LOG = PrunedLog("request-log", request_log.prune, request_log.logged_trigger_ids)
EVENT_DELIVERIES = PrunedLog("event-deliveries", event_deliveries.prune, event_deliveries.delivered_trigger_ids)


class LogRetention:
    def __init__(
        self, store: Store, pruned: PrunedLog, keep: int, interval_seconds: float, chunk: int = PRUNE_CHUNK
    ) -> None:
        self._store = store
        self._pruned = pruned
        self._keep = keep
        self._chunk = chunk
        self._dirty: set[str | None] = set()
        self._passes = Periodic(f"{pruned.name}-retention", interval_seconds, self.prune_noted)

    def note(self, trigger_id: str | None) -> None:
        self._dirty.add(trigger_id)

    async def prune_all(self) -> int:
        """Prune every trigger's log (at start, and on demand)."""
        trigger_ids = await self._store.read(self._pruned.trigger_ids)
        return await self._prune(trigger_ids)

    async def prune_noted(self) -> int:
        """Prune the triggers logged to since the last run; a run that fails (the store down) leaves them
        to the next, with those noted meanwhile (the triggers it did prune cost an empty delete then)."""
        trigger_ids, self._dirty = self._dirty, set()
        if not trigger_ids:
            return 0
        try:
            return await self._prune(trigger_ids)
        except BaseException:
            self._dirty |= trigger_ids
            raise

    async def _prune(self, trigger_ids: list[str | None] | set[str | None]) -> int:
        """Chunk after chunk, each its own write, so webhook commits go on in between."""
        prune, keep, chunk, total = self._pruned.prune, self._keep, self._chunk, 0
        while True:
            deleted = await self._store.write(lambda conn: prune(conn, trigger_ids, keep, chunk))
            total += deleted
            if deleted < chunk:
                return total

    def start(self) -> None:
        self._passes.start()

    async def close(self) -> None:
        await self._passes.close()
