"""The durable flow executor: a loop that runs batches while there is work.

It holds no state the store does not: the inbox, the flow instances and
their `due_at` timers are the whole queue, so a process can die at any
moment and the next one (or another worker on PostgreSQL) carries on. While
idle it looks for due work on a read connection every `poll_seconds`, so an
idle service takes no write lock; `wake()` cuts the wait short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from flows.background import BackgroundLoop, failure_reason, transient_failure
from flows.batch import BatchFailed, Caches, Progress, WorkItem, run_batches, set_aside
from flows.interpreter import RetryPolicy
from store import Store
from store.clock import utcnow
from store.flow_instances import next_due

log = logging.getLogger("flowhook.flows")


@dataclass(frozen=True)
class ExecutorConfig:
    # Users started or instances advanced per transaction: small enough not to hold up webhook commits.
    batch_size: int = 100
    poll_seconds: float = 0.1
    gather_seconds: float = 0.02  # after a partial batch: let arriving work gather into the next one
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class Executor(BackgroundLoop):
    def __init__(self, store: Store, config: ExecutorConfig | None = None) -> None:
        self._config = config or ExecutorConfig()
        super().__init__("executor", self._config.poll_seconds)
        self._store = store
        self._caches = Caches()
        self.on_deliveries: Callable[[], None] = lambda: None  # the event dispatcher's wake (ingress.services)

    async def step(self) -> Progress:
        """Run one batch through the store's writer and return what it did.

        A batch that fails for its data rather than for the store (see
        `transient_failure`: on PostgreSQL a user id too long for an index is
        such data) is run again an item at a time, and the item that fails
        alone is set aside, marked failed with `action-flow-failed`: claimed
        first again and again, it would otherwise fail every batch and stop
        all work behind it, in every environment.
        """
        try:
            return await self._run(self._config.batch_size)
        except BatchFailed as failed:
            if transient_failure(failed.error):
                raise
            reason = failure_reason(failed.error)
            log.warning("executor batch of %d items failed (%s); running them one at a time", len(failed.items), reason)
            return await self._one_at_a_time(len(failed.items))

    async def drain(self) -> Progress:
        """Run batches until nothing is due now; the totals of what they did."""
        total = Progress()
        while (progress := await self.step()).worked:
            total.add(progress)
        return total

    async def _run(self, budget: int) -> Progress:
        progress: Progress = await self._store.submit(run_batches, (self._caches, self._config.retry, budget))
        if progress.deliveries:  # the flows' events fire event triggers: dispatch them now, not at the next poll
            self.on_deliveries()
        return progress

    async def _one_at_a_time(self, items: int) -> Progress:
        """Batches of one, until one fails (its item is set aside) or `items` have run."""
        total = Progress()
        for _ in range(items):
            try:
                progress = await self._run(1)
            except BatchFailed as failed:
                if transient_failure(failed.error) or len(failed.items) != 1:
                    raise
                await self._set_aside(failed.items[0], failure_reason(failed.error))
                break
            if not progress.worked:
                break
            total.add(progress)
        return total

    async def _set_aside(self, item: WorkItem, reason: str) -> None:
        await self._store.write(lambda conn: set_aside(conn, item, reason))
        log.error("executor: %s %s fails whenever it runs (%s); marked failed", item.kind, item.id, reason)

    async def _round(self) -> bool:
        """A batch if work is due; at once again if it came out full, after a short pause if partial.

        Under a steady stream of webhooks, stepping again at once would run
        batches of a handful of invocations, each paying the batch's fixed
        cost (claim and finish queries, a commit); the pause lets arriving
        work gather, so a flow starts at most `gather_seconds` later.
        """
        due = await self._store.read(next_due)
        if due is None or due > utcnow():
            return False
        progress = await self.step()
        if progress.worked and progress.instances < self._config.batch_size:
            await asyncio.sleep(self._config.gather_seconds)  # not cut short by wake(): that is the point
        return progress.worked
