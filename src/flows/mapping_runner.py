"""Where mappings run in the service.

JavaScript always runs in the sandbox worker pool (crash containment, SPEC
§2); JMESPath and passthrough are pure Python, microseconds each, and run
inline. Checking a JavaScript spec compiles it in a sandbox worker too: that
runs its top level once, which the server never does.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from mapper import Limits, Mapping, MappingResult, MappingSpecError, compile_mapping
from mapper.pool import SandboxPool
from mapper.result import error_info
from store.triggers import TriggerWithFlow

MAX_STORED = 1024  # prepared stored mappings kept (event, SFMC and Marketo triggers)


@dataclass(frozen=True)
class PreparedMapping:
    """A spec ready to run: `key` names it in the pool's cache (it must change with the spec)."""

    key: str
    spec: dict[str, Any]
    variables: list[dict[str, Any]] | None
    inline: Mapping | None  # compiled here for kinds that run in-process


def content_key(spec: dict[str, Any], variables: list[dict[str, Any]] | None) -> str:
    """A key derived from the spec itself, for mappings that have no id (previews)."""
    digest = hashlib.sha256(orjson.dumps([spec, variables], option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256:{digest}"


class MappingRunner:
    def __init__(self, pool: SandboxPool, limits: Limits) -> None:
        self._pool = pool
        self._limits = limits
        self._stored: dict[str, PreparedMapping] = {}  # `run_stored`'s, by trigger and flow revisions

    def prepare(self, key: str, spec: dict[str, Any], variables: list[dict[str, Any]] | None) -> PreparedMapping:
        """Raises MappingSpecError for a bad non-JavaScript spec (JavaScript is compiled by the pool)."""
        inline = (
            None
            if spec.get("kind") == "javascript"
            else compile_mapping(spec, variables=variables, limits=self._limits)
        )
        return PreparedMapping(key, spec, variables, inline)

    async def check(self, spec: dict[str, Any], variables: list[dict[str, Any]] | None) -> None:
        """Raise MappingSpecError (with its location) unless `spec` compiles."""
        if spec.get("kind") == "javascript":
            await self._pool.check(content_key(spec, variables), spec, variables)
        else:  # off the event loop: a fields mapping may hold many expressions to compile
            await asyncio.to_thread(compile_mapping, spec, variables=variables, limits=self._limits)

    async def run(self, prepared: PreparedMapping, request: dict[str, Any]) -> MappingResult:
        """Never raises for what the mapping does; MappingSpecError for a spec the pool cannot compile."""
        if prepared.inline is not None:
            return prepared.inline.run(request)
        return await self._pool.run(prepared.key, prepared.spec, prepared.variables, request)

    async def run_stored(self, target: TriggerWithFlow, live: bool, request: dict[str, Any]) -> MappingResult:
        """A stored trigger's mapping run on `request`, with the variables of the flow version the run uses
        (`live`: the published one, else the draft). Prepared once per trigger and flow revision: an edit to
        either is a new key, so nothing stale is ever run. Never raises for the mapping."""
        trigger = target.trigger
        key = f"{trigger.id}:{trigger.revision}:{target.draft_revision}:{target.published_version}:{live}"
        try:
            if key not in self._stored:
                if len(self._stored) >= MAX_STORED:
                    self._stored.clear()
                self._stored[key] = self.prepare(key, trigger.mapping, target.variables(live=live))
            return await self.run(self._stored[key], request)
        except MappingSpecError as error:  # saved specs compile; this is a stored spec from an older version
            return MappingResult(ok=False, error=error_info("MappingSpecError", error.message, line=error.line))
