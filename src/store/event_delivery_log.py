"""An event trigger's delivery log: what each event it was sent became, newest first.

The rows are the event deliveries outbox itself (store.event_deliveries):
pending until the event dispatcher runs the trigger's mapping, then
accepted, duplicate, skipped or failed, with the cause and the mapping's
detail, and the attempts it took (a pending one may be waiting for a retry:
its cause and detail are those of its last attempt, `due_at` the next).
Reading them needs nothing more than the (trigger, seq) index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import event_deliveries

STATUSES = ("pending", "accepted", "duplicate", "skipped", "failed")


@dataclass(frozen=True)
class Delivery:
    seq: int
    id: str
    environment_id: str
    trigger_id: str
    event_id: str
    hop: int
    status: str
    cause: str | None
    detail: dict[str, Any] | None
    invocation_id: str | None
    flow_invocation_id: str | None
    created_at: datetime
    updated_at: datetime
    attempts: int
    due_at: datetime


def list_deliveries(
    conn: Connection, environment_id: str, trigger_id: str, *, status: str | None, limit: int, before: int | None
) -> tuple[list[Delivery], int | None]:
    """A page of the trigger's deliveries, newest first, and the cursor of the next page (None at the end)."""
    table = event_deliveries
    query = sa.select(table).where(table.c.trigger_id == trigger_id, table.c.environment_id == environment_id)
    if status is not None:
        query = query.where(table.c.status == status)
    if before is not None:
        query = query.where(table.c.seq < before)
    found = [Delivery(**row._mapping) for row in conn.execute(query.order_by(table.c.seq.desc()).limit(limit + 1))]
    if len(found) > limit:
        return found[:limit], found[limit - 1].seq
    return found, None
