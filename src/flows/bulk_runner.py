"""The bulk runner: a background loop that works through bulk start tasks (CSV files, manual starts, and
Marketo batches of leads, which `flows.marketo_leads` decides and `flows.marketo_callbacks` reports on).

Each round takes the oldest open task and its next chunk of rows: it decides
each row on a read connection (match customers, type the variables, build
the entry as `/start` would), then stores the chunk's invocations and moves
the task's progress on in one write transaction (store.bulk_tasks.advance).
A live row runs the flow version whose variables it was checked against,
though another be published before its chunk is stored; the next chunk is
checked against the new one (docs/flows.md).
The task is the whole queue: a process that dies mid-chunk leaves the task
where the last committed chunk left it, and the next runner (here or in
another process) carries on from there. A row's invocation key is its
`flowInvocationId`, or one derived from the task and the row, so a row is
never started twice; an existing member of a segment trigger's segment gets
one derived from their membership, so no start of them starts one twice.
A test sender's row that names users who are not test users reports them
with the task (store.bulk_tasks.Ignored), as `/test` answers `ignoredUserIds`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.engine import Connection

from flows.background import BackgroundLoop, transient_failure
from flows.csv_rows import ATTRIBUTE, Row, Skipped, read_row, typed_variables
from flows.marketo_callbacks import MarketoCallbacks
from flows.marketo_leads import MarketoLeads
from flows.start_entries import build_entry
from mapper.variables import FlowVariables
from store import Store, flows
from store.bulk_tasks import (
    MARKETO,
    Advanced,
    BulkTask,
    Chunk,
    Outcome,
    advance_batches,
    existing_customers,
    matching_customers,
    membership_key,
    next_open_task,
    selected_users,
    task_input,
)
from store.test_users import reached_and_ignored, test_user_ids

log = logging.getLogger("flowhook.flows")

#: A CSV row whose attributes match more customers than this is skipped (the seed's rule).
MAX_MATCHES = 10
NO_PROFILE = Skipped("no_customer_profile", "no customer profile: manual starts reach existing customers only")


@dataclass(frozen=True)
class BulkRunnerConfig:
    chunk_size: int = 200  # rows decided and committed per transaction
    poll_seconds: float = 0.5


class BulkRunner(BackgroundLoop):
    def __init__(
        self,
        store: Store,
        config: BulkRunnerConfig | None = None,
        *,
        on_started: Callable[[], None] = lambda: None,
        marketo: tuple[MarketoLeads, MarketoCallbacks] | None = None,
    ) -> None:
        self._config = config or BulkRunnerConfig()
        super().__init__("bulk-runner", self._config.poll_seconds)
        self._store = store
        self._on_started = on_started  # wakes the executor
        self._marketo = marketo  # without it a Marketo task fails (a runner built for CSV tasks only)
        self._inputs: dict[str, dict[str, Any]] = {}  # a task's input never changes: read it once

    async def step(self) -> int:
        """Decide and commit the next chunk of the oldest open task, else make a due Marketo callback's next
        attempt; how many rows (or callbacks) it moved on."""
        task = await self._store.read(next_open_task)
        if task is None:
            return await self._marketo[1].send_due() if self._marketo is not None else 0
        if task.id not in self._inputs:
            self._inputs = {task.id: await self._store.read(lambda conn: task_input(conn, task.id))}
        rows = self._inputs[task.id]
        if task.kind == MARKETO:
            chunk = await self._marketo_chunk(task, rows)
        else:
            chunk = await self._store.read(lambda conn: plan_chunk(conn, task, rows, self._config.chunk_size))
        try:
            advanced: Advanced = await self._store.submit(advance_batches, chunk)
        except Exception as error:
            if transient_failure(error):
                raise
            log.exception("bulk task %s: a chunk fails whenever it is stored; marking the task failed", task.id)
            await self._store.submit(advance_batches, Chunk(task.id, chunk.offset, failed=True))
            return 1
        if advanced.started:
            self._on_started()
        return advanced.processed or int(chunk.failed)

    async def _marketo_chunk(self, task: BulkTask, rows: dict[str, Any]) -> Chunk:
        if self._marketo is None:
            return Chunk(task.id, task.processed, failed=True)
        return await self._marketo[0].plan_chunk(task, rows, self._config.chunk_size)

    async def drain(self) -> int:
        """Run chunks (and callbacks) until no task is open or due; how many rows they moved on."""
        total = 0
        while moved := await self.step():
            total += moved
        return total

    async def _round(self) -> bool:
        return await self.step() > 0


def plan_chunk(conn: Connection, task: BulkTask, rows: dict[str, Any], size: int) -> Chunk:
    """The outcome of each of the task's next `size` rows (a read: nothing is stored)."""
    chunk = Chunk(task.id, task.processed)
    if task.kind == "manual":
        assert task.flow_id is not None  # a manual start names its flow
        published = _published(conn, task.environment_id, task.flow_id)
        if published is None:
            chunk.failed = True
        else:
            users = _manual_users(conn, task, rows, size)
            chunk.outcomes = _manual_outcomes(conn, task, users, rows["payload"], published)
        return chunk
    flows_seen: dict[str, Declared | None] = {}
    if task.kind == "csv" and task.flow_id is not None:
        flows_seen[task.flow_id] = _published(conn, task.environment_id, task.flow_id)
        chunk.failed = flows_seen[task.flow_id] is None
    if chunk.failed:
        return chunk
    cut = rows["rows"][task.processed : task.processed + size]
    read = [(number, read_row(rows["columns"], cells)) for number, cells in cut]
    by_attributes = [row for _, row in read if isinstance(row, Row) and row.attributes]
    names = [name for name, _ in by_attributes[0].attributes] if by_attributes else []  # every row's columns
    wanted = [_texts(row) for row in by_attributes]
    matches = matching_customers(conn, task.environment_id, names, wanted, MAX_MATCHES + 1) if wanted else {}
    testers = test_user_ids(conn, task.environment_id) if task.kind == "csv-test" else None
    for number, row in read:
        outcome = _csv_outcome(conn, task, number, row, flows_seen, matches)
        chunk.outcomes.append(outcome if testers is None else _ignoring(outcome, testers))
    return chunk


def _ignoring(outcome: Outcome, testers: set[str]) -> Outcome:
    """A test row's outcome with the users it names who are not test users: the executor sends them nothing,
    and the task reports them, as `/test` answers `ignoredUserIds` (decided when the row is, as there)."""
    if outcome.accept is None:
        return outcome
    _, ignored = reached_and_ignored(outcome.accept.payload["targetUserIds"], testers)
    return replace(outcome, ignored=tuple(ignored))


def _texts(row: Row) -> tuple[str, ...]:
    return tuple(text for _, text in row.attributes)


@dataclass(frozen=True)
class Declared:
    """What a chunk's rows for one flow are checked against, and the version a live start of them runs: the
    one checked against, though another be published before the chunk is stored (docs/flows.md)."""

    variables: list[dict[str, Any]]
    version: int | None  # None: the draft's, for a test run


def _published(conn: Connection, environment_id: str, flow_id: str) -> Declared | None:
    """The published flow's variable declarations and version; None when the flow is gone or was never
    published."""
    declared = flows.declared_variables(conn, environment_id, flow_id)
    if declared is None or declared.published is None:
        return None
    return Declared(declared.published, declared.published_version)


def _csv_outcome(
    conn: Connection,
    task: BulkTask,
    number: int,
    row: Row | Skipped,
    flows_seen: dict[str, Declared | None],
    matches: dict[tuple[str, ...], list[str]],
) -> Outcome:
    ref = {"row": number}
    if isinstance(row, Skipped):
        return _skipped(ref, row)
    flow_id = row.flow_id or task.flow_id
    assert flow_id is not None  # a task without a flow is refused at upload
    if flow_id not in flows_seen:
        declared = flows.declared_variables(conn, task.environment_id, flow_id)
        flows_seen[flow_id] = None if declared is None else Declared(declared.draft, None)
    against = flows_seen[flow_id]
    if against is None:
        return _skipped(ref, Skipped("flow_not_found", f"flowConfigId {flow_id!r}: no such flow in this environment"))
    users = row.user_ids if row.user_ids is not None else _matched(row, matches[_texts(row)])
    if isinstance(users, Skipped):
        return _skipped(ref, users)
    variables = typed_variables(row.sections.get("variables", {}), against.variables)
    if isinstance(variables, Skipped):
        return _skipped(ref, variables)
    given = {**row.sections, "variables": variables} if variables else row.sections
    key = row.key or f"{task.id}:{number}"
    mode = "test" if task.kind == "csv-test" else "live"
    return _outcome(ref, users, given, key, against, task, flow_id, mode)


def _matched(row: Row, users: list[str]) -> list[str] | Skipped:
    """The customers the row's attributes match, or why the row reaches nobody (none, or too many)."""
    wanted = " and ".join(f"{ATTRIBUTE}{name} = {text!r}" for name, text in row.attributes)
    if not users:
        return Skipped("no_match", f"no customer matches {wanted}")
    if len(users) > MAX_MATCHES:
        return Skipped("too_many_matches", f"more than {MAX_MATCHES} customers match {wanted}")
    return users


def _skipped(ref: dict[str, Any], why: Skipped) -> Outcome:
    return Outcome(ref, code=why.code, reason=why.reason)


def _manual_users(conn: Connection, task: BulkTask, rows: dict[str, Any], size: int) -> list[tuple[str, str]]:
    """The chunk's users, each with its invocation key: `<taskId>:<n>`, or for a segment trigger's existing
    members (selected into rows of their own) one per membership."""
    if "userIds" in rows:
        users = rows["userIds"][task.processed : task.processed + size]
        return [(user, f"{task.id}:{n}") for n, user in enumerate(users, task.processed + 1)]
    selected = selected_users(conn, task.id, task.processed, size)
    return [(user, membership_key(rows["segmentId"], user, entered_at)) for user, entered_at in selected]


def _manual_outcomes(
    conn: Connection,
    task: BulkTask,
    users: list[tuple[str, str]],
    payload: dict[str, Any],
    published: Declared,
) -> list[Outcome]:
    existing = existing_customers(conn, task.environment_id, [user for user, _ in users])
    outcomes = []
    for user, key in users:
        if user not in existing:
            outcomes.append(_skipped({"userId": user}, NO_PROFILE))
            continue
        assert task.flow_id is not None  # a manual start names its flow
        outcomes.append(_outcome({"userId": user}, [user], payload, key, published, task, task.flow_id, "live"))
    return outcomes


def _outcome(
    ref: dict[str, Any],
    users: list[str],
    given: dict[str, Any],
    key: str,
    against: Declared,
    task: BulkTask,
    flow_id: str,
    mode: str,
) -> Outcome:
    """The entry `/start` would store for these users and payload, or its problems as the reason."""
    entry, problems = build_entry(users, given, key, FlowVariables(against.variables))
    if problems:
        return _skipped(ref, Skipped("validation_error", "; ".join(problem["message"] for problem in problems)))
    accept = entry.accept_request(task.environment_id, flow_id, mode, task.id, flow_version=against.version)
    return Outcome(ref, accept=accept)
