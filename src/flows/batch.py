"""One executor transaction: claim work, run it, commit its effects with the new states.

A batch takes pending invocations from the inbox (expanding each into one
flow instance per target user) and flow instances that are due, runs their
steps in memory, then writes instances, cards, analytics events (with the
event trigger deliveries they cause, store.event_deliveries) and the
inbox's progress together. Nothing is visible until COMMIT and everything is
after it, so a kill -9 at any point either loses the whole batch (and the
work is claimed again) or none of it: effects are never lost or doubled.
Work is claimed with FOR UPDATE SKIP LOCKED, so on PostgreSQL several
workers share the queue; on SQLite the single writer serialises batches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flows.interpreter import Effects, Interpreter, RetryPolicy, Run
from flows.program import Program, compile_flow
from flows.templates import TemplateSource
from store import expansions
from store.analytics import EventSubject, event_row
from store.clock import utcnow
from store.event_deliveries import enqueue
from store.flow_instances import FlowInstance, claim_due, save_states, set_aside_instance
from store.flows import get_flow, published_definition
from store.idempotent import derived_id, insert_new
from store.invocations import Invocation
from store.tables import analytics_events, cards, flow_instances
from store.test_users import test_user_ids

MAX_CACHED_PROGRAMS = 1024
CLAIM_CHUNK = 64  # invocations read per query: bounds the memory a batch of huge ones takes


@dataclass
class Progress:
    """What a batch did (benchmarks and `drain` read it)."""

    invocations: int = 0  # fully expanded
    instances: int = 0  # created or advanced
    cards: int = 0
    events: int = 0
    deliveries: int = 0  # of those events to event triggers, for the event dispatcher

    @property
    def worked(self) -> bool:
        return bool(self.invocations or self.instances)

    def add(self, other: Progress) -> None:
        self.invocations += other.invocations
        self.instances += other.instances
        self.cards += other.cards
        self.events += other.events
        self.deliveries += other.deliveries


@dataclass(frozen=True)
class WorkItem:
    """What a batch took on: an invocation it expanded or a flow instance it advanced."""

    kind: Literal["invocation", "instance"]
    id: str


class BatchFailed(Exception):
    """A batch raised (and was rolled back); `items` is what it had taken on, for setting one aside."""

    def __init__(self, items: list[WorkItem], error: Exception) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.items = items
        self.error = error


@dataclass
class Caches:
    """Immutable things worth keeping between batches: compiled programs, published definitions."""

    programs: dict[str, Program] = field(default_factory=dict)
    live_snapshots: dict[tuple[str, int], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    published_templates: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)

    def program(self, snapshot_id: str, definition: dict[str, Any]) -> Program:
        """The compiled program of a snapshot (compiled once; callers hold on to what they use)."""
        if snapshot_id not in self.programs:
            if len(self.programs) >= MAX_CACHED_PROGRAMS:
                self.programs.clear()
            self.programs[snapshot_id] = compile_flow(definition)
        return self.programs[snapshot_id]


def snapshot_id(definition: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()


class Batch:
    def __init__(self, conn: Connection, caches: Caches, retry: RetryPolicy, budget: int) -> None:
        self._conn = conn
        self._caches = caches
        self._budget = budget
        self._now = utcnow()
        self._effects = Effects(self._now)
        self._interpreter = Interpreter(
            conn, self._now, retry, TemplateSource(conn, caches.published_templates), self._effects
        )
        self._snapshots: dict[str, dict[str, Any]] = {}
        self._created: list[FlowInstance] = []
        self._advanced: list[FlowInstance] = []
        self._finished: dict[str, list[str]] = {expansions.DONE: [], expansions.FAILED: []}
        self._finished_with_progress: list[str] = []  # finished now, partly expanded by an earlier batch
        self._test_users: dict[str, set[str]] = {}
        self._items: list[WorkItem] = []
        self._deliveries = 0

    def run(self) -> Progress:
        try:
            self._expand()
            if self._budget > 0:
                self._resume()
            self._commit()
        except Exception as error:  # noqa: BLE001 - re-raised with what the batch had taken on
            raise BatchFailed(self._items, error) from error
        return Progress(
            invocations=len(self._finished[expansions.DONE]),
            instances=len(self._created) + len(self._advanced),
            cards=len(self._effects.cards),
            events=len(self._effects.events),
            deliveries=self._deliveries,
        )

    def _expand(self) -> None:
        """Claim invocations a few at a time (each may name 10,000 users) until the budget is spent."""
        after = 0
        while self._budget > 0:
            claimed = expansions.claim_pending(self._conn, min(self._budget, CLAIM_CHUNK), after=after)
            if not claimed:
                return
            for invocation, known in claimed:
                if self._budget > 0:
                    self._expand_one(invocation, known)
            after = claimed[-1][0].seq or after

    def _expand_one(self, invocation: Invocation, known: expansions.Progress | None) -> None:
        """Start the invocation's next users (as many as the budget allows) and note how far it got."""
        self._items.append(WorkItem("invocation", invocation.id))
        snapshot = self._snapshot(invocation, known)
        if snapshot is None:
            self._finish(invocation, known, expansions.FAILED)
            return
        users = list(dict.fromkeys(invocation.payload["targetUserIds"]))
        start = known.next_index if known else 0
        chunk = users[start : start + self._budget]
        self._budget -= len(chunk)
        run = self._run(invocation, self._caches.program(*snapshot))
        allowed = None if invocation.mode == "live" else self._allowed(invocation.environment_id)
        for user_id in chunk:
            self._start(invocation, snapshot[0], run, user_id, ignored=allowed is not None and user_id not in allowed)
        end = start + len(chunk)
        if end >= len(users):
            self._finish(invocation, known, expansions.DONE)
        else:
            saved = expansions.Progress(invocation.id, snapshot[0], end)
            expansions.save_progress(self._conn, saved, existed=known is not None)

    def _finish(self, invocation: Invocation, known: expansions.Progress | None, status: str) -> None:
        self._finished[status].append(invocation.id)
        if known is not None:
            self._finished_with_progress.append(invocation.id)

    def _snapshot(self, invocation: Invocation, known: expansions.Progress | None) -> tuple[str, dict[str, Any]] | None:
        """(snapshot id, definition) the invocation runs: its published version, or the draft for a test."""
        if known is not None:
            found = expansions.load_snapshots(self._conn, {known.snapshot_id})
            return known.snapshot_id, found[known.snapshot_id]
        if invocation.flow_version is not None:
            key = (invocation.flow_id, invocation.flow_version)
            if key not in self._caches.live_snapshots:
                definition = published_definition(self._conn, *key)
                if definition is None:
                    return None
                self._caches.live_snapshots[key] = (snapshot_id(definition), definition)
            identifier, definition = self._caches.live_snapshots[key]
        else:
            flow = get_flow(self._conn, invocation.environment_id, invocation.flow_id)
            if flow is None:
                return None
            identifier, definition = snapshot_id(flow.draft), flow.draft
        self._snapshots[identifier] = definition
        return identifier, definition

    def _allowed(self, environment_id: str) -> set[str]:
        if environment_id not in self._test_users:
            self._test_users[environment_id] = test_user_ids(self._conn, environment_id)
        return self._test_users[environment_id]

    def _run(self, invocation: Invocation, program: Program) -> Run:
        payload = invocation.payload
        return Run(
            invocation_id=invocation.id,
            program=program,
            live=invocation.mode == "live",
            variables=program.variables(payload.get("variables")),
            card_options=payload.get("cardOptions") or {},
            metadata=payload.get("metadata") or {},
            notification_detail=payload.get("notificationDetail") or {},
            flow_version=invocation.flow_version,
            trigger_id=invocation.trigger_id,
            hop=invocation.hop or 0,
        )

    def _start(self, invocation: Invocation, snapshot: str, run: Run, user_id: str, *, ignored: bool) -> None:
        instance = FlowInstance(
            id=derived_id("fli", invocation.id, user_id),
            environment_id=invocation.environment_id,
            flow_id=invocation.flow_id,
            flow_version=invocation.flow_version,
            snapshot_id=snapshot,
            invocation_id=invocation.id,
            flow_invocation_id=invocation.flow_invocation_id,
            user_id=user_id,
            event_source="live" if run.live else "test",
            status="ignored" if ignored else "active",
            pc=0,
            outcomes={},
            due_at=None,
            waiting_card_id=None,
            released_by=None,
            attempts=0,
            last_error=None,
            created_at=self._now,
            updated_at=self._now,
        )
        self._created.append(instance)
        if ignored:
            return
        properties = {"flowVersion": run.flow_version, "triggerId": run.trigger_id}
        self._effects.emit(instance, run, "action-flow-started", properties, effect=instance.id)
        self._interpreter.advance(instance, run)

    def _resume(self) -> None:
        due = claim_due(self._conn, self._now, self._budget)
        if not due:
            return
        invocations = expansions.get_invocations(self._conn, {instance.invocation_id for instance in due})
        needed = {instance.snapshot_id for instance in due}
        programs = {key: self._caches.programs[key] for key in needed if key in self._caches.programs}
        for key, definition in (expansions.load_snapshots(self._conn, needed - programs.keys())).items():
            programs[key] = self._caches.program(key, definition)
        runs: dict[str, Run] = {}
        self._items += [WorkItem("instance", instance.id) for instance in due]
        for instance in due:
            if instance.invocation_id not in runs:
                invocation = invocations[instance.invocation_id]
                runs[instance.invocation_id] = self._run(invocation, programs[instance.snapshot_id])
            self._interpreter.advance(instance, runs[instance.invocation_id])
            instance.updated_at = self._now
            self._advanced.append(instance)

    def _commit(self) -> None:
        """Write everything the batch did; the surrounding transaction makes it one unit."""
        expansions.store_snapshots(self._conn, self._snapshots)
        insert_new(self._conn, flow_instances, [instance.row() for instance in self._created])
        save_states(self._conn, self._advanced)
        insert_new(self._conn, cards, self._effects.cards)
        insert_new(self._conn, analytics_events, self._effects.events)
        fired = enqueue(self._conn, self._effects.events, self._effects.event_hops, now=self._now)
        self._deliveries = sum(fired.values())
        for status, invocation_ids in self._finished.items():
            expansions.finish(self._conn, invocation_ids, status)
        expansions.forget_progress(self._conn, self._finished_with_progress)


def set_aside(conn: Connection, item: WorkItem, reason: str) -> None:
    """Mark work that fails whenever it runs as failed, so that it stops holding up the work behind it, and
    record `action-flow-failed` with `reason`, as for a step that failed for good.

    The event of an invocation names no user and no flow instance: a user id the store cannot take may be
    why it fails (users it already started keep their instances; the rest are not started), and an event
    naming that user would fail the same way.
    """
    now = utcnow()
    if item.kind == "invocation":
        expansions.finish(conn, [item.id], expansions.FAILED)
        expansions.forget_progress(conn, [item.id])
        invocation = expansions.get_invocations(conn, {item.id}).get(item.id)
        if invocation is None:
            return
        mode, user_id, instance_id = invocation.mode, None, None
    else:
        set_aside_instance(conn, item.id, reason, now)
        columns = flow_instances.c
        found = sa.select(columns.invocation_id, columns.user_id, columns.event_source).where(columns.id == item.id)
        invocation_id, user_id, mode = conn.execute(found).one()
        invocation = expansions.get_invocations(conn, {invocation_id}).get(invocation_id)
        if invocation is None:
            return
        instance_id = item.id
    metadata = invocation.payload.get("metadata")
    subject = EventSubject(
        environment_id=invocation.environment_id,
        end_user_id=user_id,
        flow_id=invocation.flow_id,
        flow_instance_id=instance_id,
        flow_invocation_id=invocation.flow_invocation_id,
        event_source=mode,
        metadata=metadata if isinstance(metadata, dict) else {},
    )
    properties = {"stepId": None, "error": reason, "attempts": 1}
    event = event_row(subject, "action-flow-failed", now, properties, effect=item.id)
    insert_new(conn, analytics_events, [event])
    enqueue(conn, [event], (invocation.hop or 0) + 1, now=now)


def run_batches(conn: Connection, batches: list[tuple[Caches, RetryPolicy, int]]) -> list[Progress]:
    """A `store.writer` batch apply: each queued executor tick runs one Batch in the shared transaction."""
    return [Batch(conn, caches, retry, budget).run() for caches, retry, budget in batches]
