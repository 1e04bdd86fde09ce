"""Invocations: the durable inbox between the ingress and the flow executor.

An accepted trigger request becomes one row here, committed before the sender
hears 202. `flowInvocationId` is unique per flow and mode (a unique index, so
no race can create two): a repeat with the same payload gets the original
answer and creates nothing; a different payload is a conflict. Test and live
are separate namespaces, as in Stripe: a test run never uses up a live key.

"The same payload" is the trigger request as given (a webhook's mapped
output, an API entry), before the flow's variable defaults fill it in and
without the key itself: a retry sent after a new default was published is
still the same request, and a webhook and an API call that carry the same
request agree. Hashes stored before this rule (no `v2:` prefix) were taken
over the whole stored payload, and a repeat is compared with them that way.

"The same" is the same JSON, not the same spelling: `2` and `2.0` (and `1e2`
and `100`, `-0.0` and `0`) are one number, while `true` is not `1` and
`"2"` is not `2`. A repeat costs one hash compare; only when the hashes
differ is the request looked at closer (`_same_request`), so the hot path
never walks a payload.

An archived flow (store.flows) starts nothing new: a request for it, live or
test, is refused `flow_archived`, after the duplicate check (a repeat of a
request accepted before the archive gets its original answer). The flow's
row is read once per batch whatever the mode, as a live request's published
version always was; what was accepted before runs as usual.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.bulk import BulkInsert
from store.clock import utcnow
from store.ids import new_id
from store.request_log import LogEntry, deleted_triggers, rehome_entries_of_deleted_triggers, store_entries
from store.tables import flows, invocations
from store.triggers import API_TRIGGER_PREFIX

Verdict = Literal["accepted", "duplicate", "conflict", "flow_archived", "flow_not_published", "trigger_deleted"]
Key = tuple[str, str, str]  # (flow_id, mode, flow_invocation_id)


@dataclass(frozen=True)
class Invocation:
    id: str
    environment_id: str
    flow_id: str
    flow_version: int | None
    trigger_id: str | None
    request_id: str | None
    mode: str
    flow_invocation_id: str
    payload_hash: str
    payload: dict[str, Any]
    status: str
    created_at: datetime
    hop: int | None = None  # events in a row that led here (event triggers); None when no event did
    seq: int | None = None


@dataclass(frozen=True)
class Acceptance:
    """The verdict on one request and the invocation it created or repeats."""

    verdict: Verdict
    invocation: Invocation | None


@dataclass
class AcceptRequest:
    """One trigger request to store, with the log entry that records it.

    `finish_log` fills the entry's status, cause and response once the
    verdict is known; it runs inside the transaction, so the log and the
    inbox always agree.
    """

    environment_id: str
    flow_id: str
    trigger_id: str | None
    request_id: str
    mode: str
    flow_invocation_id: str
    payload: dict[str, Any]
    log: LogEntry | None
    finish_log: Callable[[LogEntry, Acceptance], None] | None = None
    fresh_key: bool = False  # flow_invocation_id was just generated (`new_uuid7`): nothing can hold it yet
    given: dict[str, Any] | None = None  # the request before variable defaults (None: `payload` is as given)
    hop: int | None = None  # an event trigger's: events in a row that led here (store.event_deliveries)
    # A live request's: the published version whose variables its mapping applied, which it then runs, though
    # another be published by the time it is accepted (a hook's configuration is cached for a second). None:
    # the version published when it is accepted.
    flow_version: int | None = None

    @property
    def as_given(self) -> dict[str, Any]:
        return self.payload if self.given is None else self.given

    @cached_property
    def payload_hash(self) -> str:
        return request_hash(self.as_given)

    @property
    def key(self) -> Key:
        return (self.flow_id, self.mode, self.flow_invocation_id)


HASH_VERSION = "v2:"


def request_hash(given: dict[str, Any]) -> str:
    """What a repeat is compared by: the request as given, without its key; key order does not matter,
    and an empty object (`"variables": {}`) says what leaving it out says."""
    compared = {name: value for name, value in given.items() if name != "flowInvocationId" and value != {}}
    return HASH_VERSION + _digest(compared)


def payload_hash(payload: dict[str, Any]) -> str:
    """The rule before `request_hash`, for invocations stored under it: the whole stored payload."""
    return _digest(payload)


def _digest(value: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _same_request(prior: Invocation, request: AcceptRequest) -> bool:
    """Whether `request` repeats `prior`: the same hash, or the same once its numbers are spelled as stored.

    The stored row keeps the hash of the request as given and the payload after defaults, which holds
    every value given. Writing each number of the new request that equals the stored one at the same
    place as stored, and hashing again, gives the stored hash exactly when the request given then was
    this one, up to how its numbers were written: no normalizing on the way in, no new column.
    """
    digest: Callable[[dict[str, Any]], str]
    if prior.payload_hash.startswith(HASH_VERSION):
        digest, compared = request_hash, request.as_given
    else:
        digest, compared = payload_hash, request.payload
    if prior.payload_hash == digest(compared):
        return True
    return prior.payload_hash == digest(_spelled_as_stored(compared, prior.payload))


def _spelled_as_stored(value: Any, stored: Any) -> Any:
    """`value` with every number equal to the one at the same place in `stored` replaced by that one.

    Equal as numbers: `2 == 2.0 == 2e0`, `-0.0 == 0`; a boolean is not a number here (`True == 1` in
    Python, not in JSON), and integers beyond a double's precision compare exactly with floats.
    """
    if isinstance(value, dict) and isinstance(stored, dict):
        return {name: _spelled_as_stored(item, stored.get(name)) for name, item in value.items()}
    if isinstance(value, list) and isinstance(stored, list) and len(value) == len(stored):
        return [_spelled_as_stored(item, twin) for item, twin in zip(value, stored, strict=True)]
    if type(value) in _NUMBERS and type(stored) in _NUMBERS and value == stored:
        return stored
    return value


_NUMBERS = (int, float)  # exact types: bool is a subclass of int


def accept_batch(conn: Connection, requests: list[AcceptRequest]) -> list[Acceptance]:
    """A `store.writer` batch: a few statements however many requests.

    Runs inside a write transaction, which on SQLite excludes every other
    writer, so reading the existing keys first is race-free; on PostgreSQL
    the unique index turns a race into a failed batch, which the writer
    retries item by item.
    """
    logged = [request.log for request in requests if request.log is not None]
    # Since the requests arrived: their hooks and activities are dead now (an API trigger has no row).
    stored = (request.trigger_id for request in requests if not _is_api_trigger(request.trigger_id))
    deleted = deleted_triggers(conn, stored)
    existing = _existing(conn, [request for request in requests if not request.fresh_key])
    states = _flow_states(conn, {request.flow_id for request in requests})
    now = utcnow()
    created: list[Invocation] = []
    verdicts: list[Acceptance] = []
    for request in requests:
        if request.trigger_id is not None and request.trigger_id in deleted:
            verdicts.append(Acceptance("trigger_deleted", None))
            continue
        prior = existing.get(request.key)
        if prior is not None:
            verdicts.append(Acceptance("duplicate" if _same_request(prior, request) else "conflict", prior))
            continue
        state = states.get(request.flow_id, _NO_FLOW)
        if state.archived:
            verdicts.append(Acceptance("flow_archived", None))
            continue
        if request.mode == "live" and state.published_version is None:
            verdicts.append(Acceptance("flow_not_published", None))
            continue
        invocation = Invocation(
            id=new_id("inv"),
            environment_id=request.environment_id,
            flow_id=request.flow_id,
            flow_version=_version_run(request, state) if request.mode == "live" else None,
            trigger_id=request.trigger_id,
            request_id=request.request_id,
            mode=request.mode,
            flow_invocation_id=request.flow_invocation_id,
            payload_hash=request.payload_hash,
            payload=request.payload,
            status="pending",
            created_at=now,
            hop=request.hop,
        )
        existing[request.key] = invocation
        created.append(invocation)
        verdicts.append(Acceptance("accepted", invocation))
    _INSERT.execute(conn, created)
    for request, verdict in zip(requests, verdicts, strict=True):
        if request.log is not None and request.finish_log is not None:
            request.finish_log(request.log, verdict)
    rehome_entries_of_deleted_triggers(logged, deleted)
    store_entries(conn, logged)
    return verdicts


def _version_run(request: AcceptRequest, state: _FlowState) -> int | None:
    """The version a live request runs: the one its variables were mapped for, else the one published now."""
    return state.published_version if request.flow_version is None else request.flow_version


def _is_api_trigger(trigger_id: str | None) -> bool:
    return trigger_id is not None and trigger_id.startswith(API_TRIGGER_PREFIX)


_INSERT = BulkInsert(invocations, [field.name for field in fields(Invocation) if field.name != "seq"])


def _existing(conn: Connection, requests: list[AcceptRequest]) -> dict[Key, Invocation]:
    keys = {request.key for request in requests}
    if not keys:
        return {}
    query = sa.select(invocations).where(  # a superset of `keys`, served by the unique index
        invocations.c.flow_id.in_({flow for flow, _, _ in keys}),
        invocations.c.mode.in_({mode for _, mode, _ in keys}),
        invocations.c.flow_invocation_id.in_({key for _, _, key in keys}),
    )
    found: dict[Key, Invocation] = {}
    for row in conn.execute(query):
        invocation = Invocation(**row._mapping)
        key = (invocation.flow_id, invocation.mode, invocation.flow_invocation_id)
        if key in keys:
            found[key] = invocation
    return found


@dataclass(frozen=True)
class _FlowState:
    """What accepting a request needs to know of its flow."""

    published_version: int | None  # None: never published
    archived: bool  # an archived flow starts nothing new, live or test


_NO_FLOW = _FlowState(published_version=None, archived=False)

# Built once: a batch nearly always names one flow, and building the statement
# (an expanding IN) cost five times running it.
_FLOW_STATE = sa.select(flows.c.published_version, flows.c.archived_at).where(flows.c.id == sa.bindparam("flow_id"))


def _flow_states(conn: Connection, flow_ids: set[str]) -> dict[str, _FlowState]:
    """Each flow's state, one primary-key read per flow (a missing flow is absent)."""
    found: dict[str, _FlowState] = {}
    for flow_id in flow_ids:
        row = conn.execute(_FLOW_STATE, {"flow_id": flow_id}).first()
        if row is not None:
            found[flow_id] = _FlowState(row.published_version, row.archived_at is not None)
    return found


def accept_all_or_nothing(conn: Connection, groups: list[list[AcceptRequest]]) -> list[list[Acceptance]]:
    """A `store.writer` batch of requests whose invocations are stored together or not at all.

    For the Action Flow API, where one request carries several entries: each
    group runs `accept_batch` in a savepoint, rolled back when any of its
    invocations is refused (its key was used with a different payload, or its
    flow is archived or not published).
    """
    results: list[list[Acceptance]] = []
    for group in groups:
        with conn.begin_nested() as savepoint:
            verdicts = accept_batch(conn, group)
            if any(verdict.verdict not in ("accepted", "duplicate") for verdict in verdicts):
                savepoint.rollback()
        results.append(verdicts)
    return results
