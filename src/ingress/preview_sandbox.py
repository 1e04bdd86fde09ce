"""Previews and save-time checks run in a sandbox pool of their own, started at the first JavaScript one.

A mapping being edited is often unfinished: a loop not yet given its exit, a
regex that backtracks. Each preview of it holds a worker for up to the time
limit (1 s by default), and in the live pool that worker is one of the few
every webhook waits for; each edit is also a new mapping, whose compiled code
would push live mappings out of the pool's cache. One worker of its own keeps
both away from live traffic, and a server nobody edits on never starts it.
Saving a mapping checks that it compiles here too, since compiling a JavaScript
mapping runs its top level, which the server never does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flows.mapping_runner import MappingRunner, content_key
from mapper import Limits, MappingResult
from mapper.pool import SandboxPool, WorkerState


class PreviewSandbox:
    def __init__(self, limits: Limits) -> None:
        self._pool = SandboxPool(1, limits=limits)
        self._runner = MappingRunner(self._pool, limits)
        self._started = False
        self._starting = asyncio.Lock()

    async def run(
        self, spec: dict[str, Any], variables: list[dict[str, Any]] | None, request: dict[str, Any]
    ) -> MappingResult:
        """Run `spec` once on `request`; raises MappingSpecError for a spec that cannot compile."""
        prepared = self._runner.prepare(content_key(spec, variables), spec, variables)
        if prepared.inline is None:  # JavaScript: the pool's
            await self._start()
        return await self._runner.run(prepared, request)

    async def check(self, spec: dict[str, Any], variables: list[dict[str, Any]] | None) -> None:
        """Raise MappingSpecError (with its location) unless `spec` compiles."""
        if spec.get("kind") == "javascript":
            await self._start()
        await self._runner.check(spec, variables)

    @property
    def workers(self) -> list[WorkerState]:
        """The previews' worker once started (health checks, tests)."""
        return self._pool.workers if self._started else []

    async def close(self) -> None:
        async with self._starting:
            if self._started:
                await self._pool.close()
                self._started = False

    async def _start(self) -> None:
        async with self._starting:
            if not self._started:
                await self._pool.start()
                self._started = True
