"""Mappings that spin, and a way to end them: the sandbox pool's fairness tests and the noisy-neighbour test
through `serve` both need a mapping that holds a worker for as long as the test wants."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import TypeVar

from mapper.pool import SandboxPool

T = TypeVar("T")

# Spins for `ms` milliseconds of wall clock, or for ever when `ms` is negative.
SPIN = {
    "kind": "javascript",
    "source": "function map(request) {\n"
    "  const {ms} = request.body;\n"
    "  const end = Date.now() + ms;\n"
    "  while (ms < 0 || Date.now() < end) {}\n"
    "  return {targetUserIds: ['u1']};\n"
    "}",
}
FOREVER = -1


async def crash_all(pool: SandboxPool, tasks: list[asyncio.Task[T]]) -> list[T]:
    """SIGKILL busy workers until every task is done (a looping mapping ends no other way here)."""
    while not all(task.done() for task in tasks):
        busy = [worker.pid for worker in pool.workers if worker.in_flight and worker.pid]
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            while busy[0] in [worker.pid for worker in pool.workers]:
                await asyncio.sleep(0.005)
        else:
            await asyncio.sleep(0.005)
    return [task.result() for task in tasks]
