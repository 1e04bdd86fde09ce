"""Flow instances: one per (invocation, target user), the executor's unit of work.

An instance is due when `due_at` has passed: a new step to run, a timer that
fired, a released card wait or a retry after backoff. Finished instances have
no `due_at`, so the index on it holds only live work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.invocations import Invocation
from store.tables import flow_instances, invocations

#: active: has a step to run · waiting: on a timer or a card · completed · failed · ignored (test run, not a test user)
STATUSES = ("active", "waiting", "completed", "failed", "ignored")


@dataclass
class FlowInstance:
    id: str
    environment_id: str
    flow_id: str
    flow_version: int | None
    snapshot_id: str
    invocation_id: str
    flow_invocation_id: str
    user_id: str
    event_source: str
    status: str
    pc: int  # index of the next instruction of the compiled flow (flows.program)
    outcomes: dict[str, Any]  # per wait step: {"outcome": …}; branch conditions read them
    due_at: datetime | None
    waiting_card_id: str | None
    released_by: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    def row(self) -> dict[str, Any]:
        return dict(self.__dict__)


def claim_due(conn: Connection, now: datetime, limit: int) -> list[FlowInstance]:
    """Instances due by `now`, oldest first; on PostgreSQL rows other workers hold are skipped."""
    query = (
        sa.select(flow_instances)
        .where(flow_instances.c.due_at <= now)
        .order_by(flow_instances.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [FlowInstance(**row._mapping) for row in conn.execute(query)]


_UPDATABLE = (
    "status",
    "pc",
    "outcomes",
    "due_at",
    "waiting_card_id",
    "released_by",
    "attempts",
    "last_error",
    "updated_at",
)
_UPDATE = (
    sa.update(flow_instances)
    .where(flow_instances.c.id == sa.bindparam("b_id"))
    .values({name: sa.bindparam(f"b_{name}", type_=flow_instances.c[name].type) for name in _UPDATABLE})
)


def save_states(conn: Connection, instances: list[FlowInstance]) -> None:
    """Write back the state of instances the executor advanced (one executemany)."""
    if instances:
        rows = [{"b_id": i.id, **{f"b_{name}": getattr(i, name) for name in _UPDATABLE}} for i in instances]
        conn.execute(_UPDATE, rows)


def set_aside_instance(conn: Connection, instance_id: str, reason: str, now: datetime) -> None:
    """Fail an instance the executor cannot advance at all (its batch raises whenever it is in it)."""
    statement = (
        sa.update(flow_instances)
        .where(flow_instances.c.id == instance_id)
        .values(status="failed", due_at=None, last_error=reason, updated_at=now)
    )
    conn.execute(statement)


def next_due(conn: Connection) -> datetime | None:
    """When the executor next has something to do: now if the inbox has work, else the earliest timer."""
    pending = conn.execute(sa.select(invocations.c.created_at).where(invocations.c.status == "pending").limit(1))
    created: datetime | None = pending.scalar()
    if created is not None:
        return created
    due: datetime | None = (conn.execute(sa.select(sa.func.min(flow_instances.c.due_at)))).scalar()
    return due


def list_for_invocation(conn: Connection, invocation: Invocation) -> list[FlowInstance]:
    """The invocation's instances in the order its users first appear in `targetUserIds`.

    That is the order the answer to the request listed them in; the rows
    themselves have no order of their own (an invocation larger than a batch
    is expanded over several transactions, and their ids are not sequential).
    The order comes from the payload already read, so it costs no query.
    """
    position = {user: index for index, user in enumerate(dict.fromkeys(invocation.payload["targetUserIds"]))}
    query = sa.select(flow_instances).where(flow_instances.c.invocation_id == invocation.id)
    instances = [FlowInstance(**row._mapping) for row in conn.execute(query)]
    return sorted(instances, key=lambda instance: position[instance.user_id])
