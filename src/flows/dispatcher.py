"""The event dispatcher: a loop that turns pending event deliveries into invocations.

An event that fires an event trigger leaves a pending delivery in the
outbox (store.event_deliveries), committed with the event. The dispatcher
takes the oldest, runs each trigger's mapping on the event (JavaScript in
the sandbox pool, JMESPath inline, as for a webhook), and settles the batch
in one transaction (store.event_dispatch): the trigger requests become
invocations, which the executor runs, and every delivery records what
became of it. Like the executor it keeps no state the store does not: a
process that dies between the event and its dispatch leaves the delivery
pending for the next one, and a delivery settled by two processes starts
one run (its invocation key derives from it).

A run is live only when both the trigger and the event are live: a test
event (or any event of a test run) starts test runs, which reach test users
only, and a test trigger starts test runs whatever the event. A live run
starts only from an event recorded once its trigger took effect (its flow's
first publication, or its creation if later), and runs the version whose
variables its mapping applied: settling decides that, in the transaction
that claims the delivery (store.event_dispatch), since the flow may be
published while the mapping runs (the delivery is then mapped again).

A mapping that failed through no fault of its own (its sandbox worker
crashed: `sandbox_crashed`) is tried again later rather than settled
failed: after 1, 2, 4 and 8 minutes, and the fifth such failure settles it
failed (`DispatcherConfig.retry`). A delivery waiting for its retry stays
pending, with its attempts and last cause on the row, and is not read
until due, so it holds up nothing. Whatever the mapping itself decides (an
error it throws, a time or memory limit, an invalid output) would come out
the same again, and is settled at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flows.background import BackgroundLoop, transient_failure
from flows.interpreter import RetryPolicy
from flows.mapping_runner import MappingRunner
from mapper.request import json_request
from store import Store
from store.analytics import AnalyticsEvent
from store.clock import iso, utcnow
from store.event_deliveries import PENDING
from store.event_dispatch import (
    ACCEPTED,
    FAILED,
    SKIPPED,
    PendingDelivery,
    Settled,
    Settlement,
    pending,
    set_aside,
    settle_batches,
)
from store.invocations import AcceptRequest

log = logging.getLogger("flowhook.flows")

#: Mapping errors that are the sandbox's failure, not the mapping's: another attempt may well succeed.
TRANSIENT_ERRORS = frozenset({"SandboxCrashed"})


@dataclass(frozen=True)
class DispatcherConfig:
    batch_size: int = 100  # deliveries mapped and settled per transaction
    poll_seconds: float = 0.1
    # A transient failure is retried after 1, 2, 4, 8 minutes; the fifth attempt's failure is final.
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=5, base_seconds=60.0, max_seconds=480.0)
    )


class EventDispatcher(BackgroundLoop):
    def __init__(
        self,
        store: Store,
        runner: MappingRunner,
        config: DispatcherConfig | None = None,
        *,
        on_accepted: Callable[[], None] = lambda: None,
        on_settled: Callable[[str], None] = lambda trigger_id: None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._config = config or DispatcherConfig()
        super().__init__("event-dispatcher", self._config.poll_seconds)
        self._store = store
        self._runner = runner
        self._on_accepted = on_accepted  # wakes the executor
        self._on_settled = on_settled  # notes a trigger whose deliveries to prune (ingress.retention)
        self._clock = clock  # when retries are due: tests move it on rather than wait

    async def step(self) -> int:
        """Map and settle one batch of the pending deliveries due now; how many were settled (or set to retry),
        or left to be mapped again at once (their trigger or flow changed while they were mapped)."""
        now = self._clock()
        deliveries = await self._store.read(lambda conn: pending(conn, self._config.batch_size, now))
        if not deliveries:
            return 0
        settlements = list(await asyncio.gather(*(self._decide(delivery, now) for delivery in deliveries)))
        settled = await self._settle(settlements)
        for trigger_id in {delivery.trigger_id for delivery in deliveries}:
            self._on_settled(trigger_id)
        if settled.accepted:
            self._on_accepted()
        return settled.settled + settled.stale

    async def drain(self) -> int:
        """Run batches until no delivery due is left that this dispatcher can settle; how many it settled (a
        delivery mapped again counts once more)."""
        total = 0
        while settled := await self.step():
            total += settled
        return total

    async def _decide(self, delivery: PendingDelivery, now: datetime) -> Settlement:
        target, attempts = delivery.target, delivery.attempts
        if target is None:  # removed since the read began; settling finds its deliveries gone with it
            return Settlement(delivery.id, None, SKIPPED, "trigger_deleted", attempts=attempts)
        trigger = target.trigger
        if trigger.mode == "disabled":
            return Settlement(delivery.id, trigger.revision, SKIPPED, "trigger_disabled", attempts=attempts)
        if target.flow_archived:  # as accepting would decide (store.invocations), without running the mapping
            return Settlement(delivery.id, trigger.revision, SKIPPED, "flow_archived", attempts=attempts)
        live = trigger.mode == "live" and delivery.event.event_source == "live"
        result = await self._runner.run_stored(target, live, mapping_request(delivery.event))
        decided = Settlement(
            delivery.id,
            trigger.revision,
            FAILED,
            detail=result.to_dict(),
            attempts=attempts,
            flow_version=target.published_version,  # whose variables a live mapping applied
        )
        retry = self._config.retry
        if result.skipped:
            decided.status, decided.cause = SKIPPED, "skipped"
        elif result.error is not None and result.error.get("type") in TRANSIENT_ERRORS:
            decided.cause = "sandbox_crashed"
            if attempts + 1 < retry.max_attempts:
                decided.status, decided.retry_at = PENDING, now + retry.delay(attempts + 1)
        elif result.error is not None:
            decided.cause = "mapping_error"
        elif result.validation_errors or result.output is None:
            decided.cause = "validation_error"
        else:
            decided.status = ACCEPTED
            decided.accept = AcceptRequest(
                environment_id=trigger.environment_id,
                flow_id=trigger.flow_id,
                trigger_id=trigger.id,
                request_id=delivery.id,
                mode="live" if live else "test",
                flow_invocation_id=result.output.get("flowInvocationId") or delivery.id,
                payload=result.output,
                log=None,
                given=result.mapped,
                hop=delivery.hop,
            )
        return decided

    async def _settle(self, settlements: list[Settlement]) -> Settled:
        """Settle the batch; if it fails for its data, one delivery at a time, setting aside (and counting as
        settled) any that fails alone."""
        try:
            return await self._submit(settlements)
        except Exception as error:
            if transient_failure(error):
                raise
            log.warning("settling %d event deliveries failed (%s); one at a time", len(settlements), error)
        total = Settled(0, 0)
        for settlement in settlements:
            try:
                one = await self._submit([settlement])
            except Exception as error:
                if transient_failure(error):
                    raise
                await self._set_aside(settlement.delivery_id, f"{type(error).__name__}: {error}")
                one = Settled(1, 0)
            total += one
        return total

    async def _set_aside(self, delivery_id: str, reason: str) -> None:
        await self._store.write(lambda conn: set_aside(conn, delivery_id, reason))
        log.error("event delivery %s fails whenever it is settled (%s); marked failed", delivery_id, reason)

    async def _submit(self, settlements: list[Settlement]) -> Settled:
        settled: Settled = await self._store.submit(settle_batches, settlements)
        return settled

    async def _round(self) -> bool:
        """A batch of the pending deliveries (reading them is the check); at once again if it came out full."""
        return await self.step() >= self._config.batch_size


def mapping_request(event: AnalyticsEvent) -> dict[str, Any]:
    """The request a trigger's mapping sees: the event as the JSON body of a `POST /v1/{env}/events`."""
    body = {
        "id": event.id,
        "eventName": event.event_name,
        "endUserId": event.end_user_id,
        "properties": event.properties,
        "metadata": event.metadata,
        "timestamp": iso(event.timestamp),
        "eventSource": event.event_source,
        "flowId": event.flow_id,
    }
    return json_request(f"/v1/{event.environment_id}/events", body, iso(event.timestamp))
