"""The executor's side of the inbox: claim pending invocations, record how far each got.

An invocation is expanded into one flow instance per target user. A large
one (up to 10,000 users) is expanded over several transactions so no single
one holds the writer for long; `invocation_progress` remembers where the
next one starts and which flow snapshot the earlier ones used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.idempotent import insert_new
from store.invocations import Invocation
from store.tables import flow_instances, flow_snapshots, invocation_progress, invocations

PENDING = "pending"
DONE = "done"
FAILED = "failed"


@dataclass(frozen=True)
class Progress:
    invocation_id: str
    snapshot_id: str
    next_index: int


_CLAIM = (
    sa.select(invocations, invocation_progress.c.snapshot_id, invocation_progress.c.next_index)
    .outerjoin(invocation_progress, invocation_progress.c.invocation_id == invocations.c.id)
    .where(invocations.c.status == PENDING, invocations.c.seq > sa.bindparam("after"))
    .order_by(invocations.c.seq)
    .limit(sa.bindparam("limit"))
    .with_for_update(of=invocations, skip_locked=True)
)  # built once: compiling it cost more than running it
_INVOCATION_COLUMNS = tuple(column.name for column in invocations.columns)


def claim_pending(conn: Connection, limit: int, *, after: int = 0) -> list[tuple[Invocation, Progress | None]]:
    """The oldest pending invocations after sequence `after`, each with how far an earlier batch got.

    On PostgreSQL those another worker holds are skipped.
    """
    claimed: list[tuple[Invocation, Progress | None]] = []
    for row in conn.execute(_CLAIM, {"after": after, "limit": limit}):
        values = row._mapping
        invocation = Invocation(**{name: values[name] for name in _INVOCATION_COLUMNS})
        snapshot_id = values["snapshot_id"]
        progress = None if snapshot_id is None else Progress(invocation.id, snapshot_id, values["next_index"])
        claimed.append((invocation, progress))
    return claimed


def get_invocations(conn: Connection, invocation_ids: set[str]) -> dict[str, Invocation]:
    if not invocation_ids:
        return {}
    query = sa.select(invocations).where(invocations.c.id.in_(invocation_ids))
    return {row.id: Invocation(**row._mapping) for row in conn.execute(query)}


def get_invocation(conn: Connection, flow_id: str, flow_invocation_id: str, mode: str | None) -> Invocation | None:
    """The invocation with this key in `mode`; without a mode, the live one if the key has both (keys are per mode)."""
    query = sa.select(invocations).where(
        invocations.c.flow_id == flow_id, invocations.c.flow_invocation_id == flow_invocation_id
    )
    if mode is not None:
        query = query.where(invocations.c.mode == mode)
    found = [Invocation(**row._mapping) for row in conn.execute(query)]
    return min(found, key=lambda invocation: invocation.mode != "live", default=None)


def save_progress(conn: Connection, progress: Progress, *, existed: bool) -> None:
    if existed:
        statement = (
            sa.update(invocation_progress)
            .where(invocation_progress.c.invocation_id == progress.invocation_id)
            .values(next_index=progress.next_index)
        )
        conn.execute(statement)
    else:
        conn.execute(sa.insert(invocation_progress).values(**progress.__dict__))


_FINISH = (
    sa.update(invocations)
    .where(invocations.c.id == sa.bindparam("invocation_id"))
    .values(status=sa.bindparam("new_status"))
)
_FORGET = sa.delete(invocation_progress).where(invocation_progress.c.invocation_id == sa.bindparam("invocation_id"))


def finish(conn: Connection, invocation_ids: list[str], status: str) -> None:
    """Mark invocations expanded (or failed)."""
    if invocation_ids:
        conn.execute(_FINISH, [{"invocation_id": id_, "new_status": status} for id_ in invocation_ids])


def forget_progress(conn: Connection, invocation_ids: list[str]) -> None:
    """Drop the progress rows of invocations now fully expanded."""
    if invocation_ids:
        conn.execute(_FORGET, [{"invocation_id": id_} for id_ in invocation_ids])


def store_snapshots(conn: Connection, definitions: dict[str, dict[str, Any]]) -> None:
    insert_new(conn, flow_snapshots, [{"id": key, "definition": value} for key, value in definitions.items()])


def load_snapshots(conn: Connection, snapshot_ids: set[str]) -> dict[str, dict[str, Any]]:
    if not snapshot_ids:
        return {}
    query = sa.select(flow_snapshots).where(flow_snapshots.c.id.in_(snapshot_ids))
    return {row.id: row.definition for row in conn.execute(query)}


def running_snapshots(conn: Connection, environment_id: str) -> dict[str, str]:
    """Snapshot id -> flow id of every definition still running in the environment: one an unfinished
    instance runs, or one an invocation is still being expanded into (a flow edited since may not name
    what these still need)."""
    running = sa.select(flow_instances.c.snapshot_id, flow_instances.c.flow_id).where(
        flow_instances.c.environment_id == environment_id, flow_instances.c.status.in_(("active", "waiting"))
    )
    expanding = (
        sa.select(invocation_progress.c.snapshot_id, invocations.c.flow_id)
        .join(invocations, invocations.c.id == invocation_progress.c.invocation_id)
        .where(invocations.c.environment_id == environment_id)
    )
    return {snapshot_id: flow_id for snapshot_id, flow_id in conn.execute(sa.union(running, expanding))}


def pending_flow_versions(conn: Connection, environment_id: str) -> set[tuple[str, int | None]]:
    """(flow id, version) of every invocation of the environment accepted and not yet fully expanded: its runs
    have still to start, with that published version (the one it was accepted under, however many were
    published since), or with the flow's draft as it is then for a test (version None)."""
    query = (
        sa.select(invocations.c.flow_id, invocations.c.flow_version)
        .where(invocations.c.status == PENDING, invocations.c.environment_id == environment_id)
        .distinct()
    )
    return {(flow_id, version) for flow_id, version in conn.execute(query)}
