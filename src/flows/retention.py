"""Bounded retention of the executor's finished work, pruned in the background.

Every process that runs the executor (`serve`, `flowhook worker`) prunes,
every `interval` seconds, the invocations finished more than `days` ago with
their flow instances (store.invocation_retention), a bounded chunk per
transaction, as the request log's retention does (ingress.retention): one
large delete would hold the store's writer, and every webhook waiting to
commit, for as long as it took. On PostgreSQL the processes take turns
through an advisory lock, so several of them pruning is harmless.

A pass walks the invocations in id (creation) order up to the cutoff, and
what it walked past and kept (work still waiting, or finished less than the
period ago) is still there for the next pass. So most passes go on from
where the last one reached, and see only what aged past the cutoff since;
one pass an hour walks from the oldest again, for what finished meanwhile.
A flow whose waits outlast the period (a reminder sent after 45 days to
100,000 users) would otherwise cost a thousand empty chunks every minute.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from functools import partial

from flows.background import Periodic
from store import Store
from store.clock import utcnow
from store.invocation_retention import prune_finished

PRUNE_CHUNK = 100  # invocations read per transaction (with their instances, ~200 rows deleted): ~8 ms of the writer
FULL_WALK_SECONDS = 3600.0  # how often a pass starts from the oldest invocation again


class InvocationRetention:
    def __init__(
        self,
        store: Store,
        days: int,
        interval_seconds: float,
        chunk: int = PRUNE_CHUNK,
        full_walk_seconds: float = FULL_WALK_SECONDS,
    ) -> None:
        self._store = store
        self._period = timedelta(days=days)
        self._chunk = chunk
        self._full_walk_seconds = full_walk_seconds
        self._walked_to = ""  # the last invocation id the last pass reached
        self._next_full_walk = time.monotonic()
        self._passes = Periodic("invocation-retention", interval_seconds, self._pass)
        self.chunks = 0  # transactions run; lets tests see how far a pass walked

    async def prune(self, now: datetime | None = None, *, resume: bool = False) -> int:
        """Delete everything finished before `now` minus the period, chunk after chunk; rows deleted.

        `resume` starts where the last pass reached instead of at the oldest invocation.
        """
        cutoff = (utcnow() if now is None else now) - self._period
        after, total = self._walked_to if resume else "", 0
        while True:
            chunk = await self._store.write(partial(prune_finished, cutoff=cutoff, after=after, limit=self._chunk))
            total, self.chunks = total + chunk.deleted, self.chunks + 1
            if chunk.next_after is None:
                self._walked_to = after
                return total
            after = chunk.next_after

    def start(self) -> None:
        self._passes.start()

    async def close(self) -> None:
        await self._passes.close()

    async def _pass(self) -> int:
        """The background pass: from where the last one reached, or from the oldest once an hour."""
        resume = time.monotonic() < self._next_full_walk
        if not resume:
            self._next_full_walk = time.monotonic() + self._full_walk_seconds
        return await self.prune(resume=resume)
