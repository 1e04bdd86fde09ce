"""What the background work has yet to do: the figures an operator watches to see it keep up.

Read from the store, not from any one process, so every `serve` and
`worker` process sharing a database reports the same backlog. Each count
walks an index over the waiting rows only (work done is never counted), so
a scrape costs in proportion to what waits, not to the tables' size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.bulk_tasks import PENDING as TASK_PENDING
from store.bulk_tasks import RUNNING as TASK_RUNNING
from store.event_deliveries import PENDING as DELIVERY_PENDING
from store.flow_instances import next_due
from store.tables import bulk_tasks, event_deliveries, flow_instances, invocations


@dataclass(frozen=True)
class Backlog:
    invocations_pending: int  # accepted, not yet expanded into flow instances
    instances_due: int  # flow instances whose next step or timer is due
    deliveries_due: int  # events' deliveries to their triggers, due and not yet run
    bulk_tasks_open: int  # manual, CSV and Marketo tasks pending or running
    executor_lag_seconds: float  # how long the oldest due executor work has waited (0 when none is due)


def _count(conn: Connection, table: sa.Table, *conditions: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*conditions)).scalar_one())


def backlog(conn: Connection, now: datetime) -> Backlog:
    due = next_due(conn)
    return Backlog(
        invocations_pending=_count(conn, invocations, invocations.c.status == "pending"),
        instances_due=_count(conn, flow_instances, flow_instances.c.due_at <= now),
        deliveries_due=_count(
            conn, event_deliveries, event_deliveries.c.status == DELIVERY_PENDING, event_deliveries.c.due_at <= now
        ),
        bulk_tasks_open=_count(conn, bulk_tasks, bulk_tasks.c.status.in_((TASK_PENDING, TASK_RUNNING))),
        executor_lag_seconds=max(0.0, (now - due).total_seconds()) if due is not None else 0.0,
    )
