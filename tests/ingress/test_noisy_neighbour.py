"""One trigger whose mapping loops does not hold up another trigger's webhooks.

With two sandbox workers, a few webhooks of a trigger whose mapping loops used
to take both workers, and any other trigger's webhook waited behind them for
their time limits. The mapping here loops for ever (the engine's limit is
30 s), so the order is decided by the pool alone; the test crashes the
workers to end the loops.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest
from tests.support.sandbox import SPIN, crash_all  # SPIN loops for ever when the body's `ms` < 0

from ingress.settings import Settings
from mapper import Limits

pytestmark = pytest.mark.anyio

MAPPED = {"kind": "javascript", "source": "function map(request) { return {targetUserIds: ['u2']}; }"}


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    return replace(settings, sandbox_workers=2, mapping_limits=Limits(time_ms=30_000))


async def test_a_looping_trigger_leaves_a_worker_to_the_other_triggers(flowhook: Any) -> None:
    looping_trigger, other_trigger = await flowhook.trigger(mapping=SPIN), await flowhook.trigger(mapping=MAPPED)
    pool = flowhook.services.pool
    slow = await flowhook.post(looping_trigger, b'{"ms": 250}')  # slower than the pool's 50 ms mark
    assert slow.status_code == 202, slow.text
    looping = [asyncio.create_task(flowhook.post(looping_trigger, b'{"ms": -1}')) for _ in range(3)]
    while not any(worker.in_flight for worker in pool.workers):
        await asyncio.sleep(0.005)
    assert [worker.in_flight for worker in pool.workers].count(1) == 1 and pool.queued == 2

    answer = await flowhook.post(other_trigger, b"{}")
    assert answer.status_code == 202, answer.text
    assert not any(task.done() for task in looping)

    responses: list[httpx.Response] = await crash_all(pool, looping)  # the loops end no other way
    assert all(response.status_code != 202 for response in responses), [response.text for response in responses]
