"""The request log: every request to a hook, accepted or not, with its cause.

Bounded: `prune` keeps the newest N entries per trigger (and N for requests
to unknown hooks, which belong to no trigger). Pages are newest first; the
next page starts below a row sequence, which the API hands out bound to its
filters (ingress.api.cursors).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.bulk import BulkInsert
from store.pruning import prune_newest
from store.tables import request_log, triggers


@dataclass
class LogEntry:
    """One request as the log keeps it: headers redacted, body capped."""

    id: str
    environment_id: str | None
    trigger_id: str | None
    hook_id: str
    received_at: datetime
    method: str
    path: str
    query: str
    client_ip: str | None
    headers: dict[str, str]
    content_type: str | None
    body: str
    body_bytes: int
    body_truncated: bool
    verified: bool = False
    status: int = 0
    cause: str | None = None
    mode: str | None = None
    message: str | None = None  # why, in words (for the admin; may say more than the response)
    mapping: dict[str, Any] | None = None  # the MappingResult: output, error, validation errors, console, time
    response: dict[str, Any] | None = None
    invocation_id: str | None = None
    replay_of: str | None = None
    seq: int | None = None


@dataclass(frozen=True)
class StatusFilter:
    """An exact status (`404`) or a class (`4xx`)."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> StatusFilter:
        if len(text) == 3 and text[0] in "12345" and text[1:].lower() == "xx":
            low = int(text[0]) * 100
            return cls(low, low + 99)
        if text.isascii() and text.isdigit() and len(text) == 3:  # not "١٢٣" nor "²²²", which isdigit takes
            return cls(int(text), int(text))
        raise ValueError("status must be a code like 202 or a class like 4xx")


_INSERT = BulkInsert(request_log, [field.name for field in fields(LogEntry) if field.name != "seq"])


def insert_entries(conn: Connection, entries: list[LogEntry]) -> list[None]:
    """A `store.writer` batch: one executemany for the whole group."""
    rehome_entries_of_deleted_triggers(entries, deleted_triggers(conn, (entry.trigger_id for entry in entries)))
    store_entries(conn, entries)
    return [None] * len(entries)


def store_entries(conn: Connection, entries: list[LogEntry]) -> None:
    _INSERT.execute(conn, entries)


# Compiled once; a batch nearly always names one trigger.
_TRIGGER_EXISTS = sa.select(triggers.c.id).where(triggers.c.id == sa.bindparam("trigger_id"))


def deleted_triggers(conn: Connection, trigger_ids: Iterable[str | None]) -> set[str]:
    """Those of these stored triggers deleted since their requests arrived (this transaction sees the deletes)."""
    named = {trigger_id for trigger_id in trigger_ids if trigger_id is not None}
    return {name for name in named if conn.execute(_TRIGGER_EXISTS, {"trigger_id": name}).first() is None}


def rehome_entries_of_deleted_triggers(entries: Iterable[LogEntry], deleted: set[str]) -> None:
    """Keep such an entry as an unknown hook's: its trigger's log went with the trigger, and an entry
    left under it could be neither listed nor pruned."""
    for entry in entries:
        if entry.trigger_id in deleted:
            entry.trigger_id = entry.environment_id = entry.mode = None


def _visible_in(environment_id: str) -> sa.ColumnElement[bool]:
    """Requests to unknown hooks have no environment; every environment sees them."""
    return sa.or_(request_log.c.environment_id == environment_id, request_log.c.environment_id.is_(None))


@dataclass(frozen=True)
class LogFilter:
    """Which entries a listing (or a bulk replay) takes; None for any. `since` and `until` bound the time
    received, both inclusive."""

    trigger_id: str | None = None
    status: StatusFilter | None = None
    cause: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def select(self, environment_id: str) -> sa.Select[Any]:
        query = sa.select(request_log).where(_visible_in(environment_id))
        if self.trigger_id is not None:
            query = query.where(request_log.c.trigger_id == self.trigger_id)
        if self.status is not None:
            query = query.where(request_log.c.status.between(self.status.low, self.status.high))
        if self.cause is not None:
            query = query.where(request_log.c.cause == self.cause)
        if self.since is not None:
            query = query.where(request_log.c.received_at >= self.since)
        if self.until is not None:
            query = query.where(request_log.c.received_at <= self.until)
        return query


def list_entries(
    conn: Connection, environment_id: str, where: LogFilter, *, limit: int = 50, before: int | None = None
) -> tuple[list[LogEntry], int | None]:
    """A page, newest first, and the cursor of the next page (None at the end)."""
    query = where.select(environment_id)
    if before is not None:
        query = query.where(request_log.c.seq < before)
    return _page(conn, query.order_by(request_log.c.seq.desc()), limit)


#: What a bulk replay takes: requests the hook refused. An accepted, captured or skipped one stays a single replay.
REFUSED = StatusFilter(400, 599)


def refused_in_order(
    conn: Connection, environment_id: str, where: LogFilter, *, limit: int, after: int | None = None
) -> tuple[list[LogEntry], int | None]:
    """A page of the refused requests (4xx, 5xx) among those `where` selects, oldest first, and where the next
    starts: what a bulk replay runs again, in the order the sender sent them. Replays are left out, and so
    are requests a replay already recovered (answered 2xx), so that running a recovery again takes only what
    is still refused."""
    replay = request_log.alias("replay")
    recovered = sa.exists().where(replay.c.replay_of == request_log.c.id, replay.c.status.between(200, 299))
    refused = request_log.c.status.between(REFUSED.low, REFUSED.high)
    query = where.select(environment_id).where(refused, request_log.c.replay_of.is_(None), ~recovered)
    if after is not None:
        query = query.where(request_log.c.seq > after)
    return _page(conn, query.order_by(request_log.c.seq), limit)


def _page(conn: Connection, ordered: sa.Select[Any], limit: int) -> tuple[list[LogEntry], int | None]:
    entries = [LogEntry(**row._mapping) for row in conn.execute(ordered.limit(limit + 1))]
    if len(entries) > limit:
        return entries[:limit], entries[limit - 1].seq
    return entries, None


def get_entry(conn: Connection, environment_id: str, request_id: str) -> LogEntry | None:
    query = sa.select(request_log).where(request_log.c.id == request_id, _visible_in(environment_id))
    row = conn.execute(query).first()
    return LogEntry(**row._mapping) if row else None


def prune(conn: Connection, trigger_ids: Iterable[str | None], keep: int, limit: int | None = None) -> int:
    """Delete all but the newest `keep` entries of each trigger (store.pruning); returns rows deleted."""
    return prune_newest(conn, request_log, trigger_ids, keep, limit)


def logged_trigger_ids(conn: Connection) -> list[str | None]:
    """Every trigger (and None for unknown hooks) with entries; for a full prune at start."""
    return list(conn.execute(sa.select(request_log.c.trigger_id).distinct()).scalars())
