"""The segment evaluator: a background loop that finishes the segment evaluations nobody is moving on.

Creating or editing a segment evaluates it over every customer in the
request, a chunk per transaction (ingress.api.segments). If that stops short
(the process died, the request was cancelled), the segment's evaluation lease
runs out (store.segments.LEASE) and the evaluator of any process running the
executor takes it over: it goes on from the last chunk committed, chunk by
chunk, each chunk renewing the lease. Each chunk's transaction checks that
the evaluation is still where this evaluator left it, so two evaluators (two
processes on PostgreSQL, or the request that came back to life) never
evaluate the same chunk: the one that finds it moved on lets go.

A chunk that fails (a bug, a row it cannot handle) is logged and its
evaluation put off (its lease pushed forward, doubling from `retry_seconds`
at each failure in a row up to `max_retry_seconds`), so that the others
whose lease ran out go on meanwhile, in this process and every other. One
that fails because the store does (`transient_failure`) is not put off (that
would be a write too): the loop backs off and goes on with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from flows.background import BackgroundLoop, transient_failure
from flows.durations import doubling
from store import Store, segments
from store.clock import utcnow

log = logging.getLogger("flowhook.segments")


@dataclass(frozen=True)
class SegmentEvaluatorConfig:
    poll_seconds: float = 2.0  # how often an idle evaluator looks for a lease run out
    chunk_size: int = segments.CHUNK  # customers per transaction
    retry_seconds: float = 10.0  # a failed chunk is tried again after this, doubling at each failure in a row
    max_retry_seconds: float = 600.0


class SegmentEvaluator(BackgroundLoop):
    def __init__(
        self,
        store: Store,
        config: SegmentEvaluatorConfig | None = None,
        *,
        on_delivered: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config or SegmentEvaluatorConfig()
        super().__init__("segment-evaluator", self._config.poll_seconds)
        self._store = store
        self._on_delivered = on_delivered  # wakes the event dispatcher for the segment triggers' deliveries
        self._current: segments.Segment | None = None  # the evaluation taken over, and where it stands
        self._failures: dict[str, int] = {}  # segment id -> chunks of it that failed in a row here

    async def step(self) -> bool:
        """Evaluate the next chunk of the evaluation taken over, else of the one whose lease ran out longest
        ago; False when there was none to evaluate here."""
        segment = self._current or await self._store.read(lambda conn: segments.stale_evaluation(conn, utcnow()))
        if segment is None:
            return False
        after, size = segment.evaluation.after, self._config.chunk_size
        self._current = None
        try:
            chunk = await self._store.write(
                lambda conn: segments.evaluate_chunk(conn, segment.id, segment.revision, after, limit=size)
            )
        except Exception as error:  # noqa: BLE001 - put off, so that it does not hold up the other evaluations
            if transient_failure(error):  # the store's, not the segment's: the loop backs off, then goes on here
                self._current = segment
                raise
            failures = self._failures[segment.id] = self._failures.get(segment.id, 0) + 1
            delay = doubling(failures, self._config.retry_seconds, self._config.max_retry_seconds)
            seconds = delay.total_seconds()
            log.exception(
                "evaluating segment %s failed (%d in a row); next try in %.0f s", segment.id, failures, seconds
            )
            until = utcnow() + delay
            await self._store.write(
                lambda conn: segments.postpone_evaluation(conn, segment.id, segment.revision, after, until)
            )
            return True
        self._failures.pop(segment.id, None)
        if chunk.changes.deliveries:
            self._on_delivered()
        if not chunk.advanced or chunk.evaluation is None:
            return False  # moved on by someone else, or superseded by a newer edit (whose evaluator has it)
        if not chunk.evaluation.complete:
            self._current = replace(segment, evaluation=chunk.evaluation)
        return True

    async def drain(self) -> int:
        """Evaluate chunks until no evaluation is left to take over; how many."""
        chunks = 0
        while await self.step():
            chunks += 1
        return chunks

    async def _round(self) -> bool:
        return await self.step()
