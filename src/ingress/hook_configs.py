"""Compiled webhook configurations, cached by hook id.

A request must not pay for loading and compiling its trigger (verification
config, allowlist, mapping), so each hook's compiled form is kept in memory.
A change made through this process's API clears the cache at once; a change
made by another process (several `serve` workers) is seen within
`ttl_seconds`: an entry older than that is revalidated against the
trigger's and flow's revision numbers (one indexed read) and recompiled only
if they moved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flows.mapping_runner import MappingRunner, PreparedMapping
from ingress.allowlist import IpAllowlist
from ingress.verification import Verifier, compile_verification
from store import Store
from store.storable import NUL
from store.triggers import HookTarget, Trigger, hook_revisions, load_hook_target


@dataclass
class HookConfig:
    target: HookTarget
    verifier: Verifier | None
    allowlist: IpAllowlist
    mapping: PreparedMapping
    checked_at: float

    @property
    def trigger(self) -> Trigger:
        return self.target.trigger


class HookConfigs:
    def __init__(self, store: Store, runner: MappingRunner, ttl_seconds: float) -> None:
        self._store = store
        self._runner = runner
        self._ttl = ttl_seconds
        self._entries: dict[str, HookConfig] = {}

    def invalidate(self) -> None:
        """Forget everything; called after every configuration write in this process."""
        self._entries.clear()

    async def get(self, hook_id: str) -> HookConfig | None:
        """The compiled config for `hook_id`, or None for an unknown hook.

        A stored config that no longer compiles raises (and so fails closed:
        the request is answered 500, never let through unverified). An id
        with NUL cannot have been issued, and PostgreSQL could not even look
        it up: it is unknown.
        """
        if NUL in hook_id:
            return None
        now = time.monotonic()
        entry = self._entries.get(hook_id)
        if entry is not None and now - entry.checked_at < self._ttl:
            return entry
        if entry is not None:
            revisions = await self._store.read(lambda conn: hook_revisions(conn, hook_id))
            if revisions == entry.target.revisions:
                entry.checked_at = now
                return entry
        target = await self._store.read(lambda conn: load_hook_target(conn, hook_id))
        if target is None:
            self._entries.pop(hook_id, None)
            return None
        entry = self._compile(target, now)
        self._entries[hook_id] = entry
        return entry

    def _compile(self, target: HookTarget, now: float) -> HookConfig:
        trigger = target.trigger
        revisions = target.revisions
        key = f"{trigger.id}:{revisions.trigger}:{revisions.flow_draft}:{revisions.flow_published}"
        return HookConfig(
            target=target,
            verifier=compile_verification(trigger.verification),
            allowlist=IpAllowlist(trigger.allowed_ips),
            mapping=self._runner.prepare(key, trigger.mapping, target.variables),
            checked_at=now,
        )
