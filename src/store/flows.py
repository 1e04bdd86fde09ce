"""Flows: an editable draft and immutable published versions.

Only what the ingress needs lives here (variables for mappings, whether and
which version is published); the flow definition itself is opaque JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.ids import new_id
from store.tables import flow_versions, flows


@dataclass(frozen=True)
class Flow:
    id: str
    environment_id: str
    draft: dict[str, Any]
    draft_revision: int
    published_version: int | None
    created_at: datetime
    updated_at: datetime


def insert_flow(conn: Connection, environment_id: str, draft: dict[str, Any]) -> Flow:
    now = utcnow()
    flow = Flow(new_id("flw"), environment_id, draft, 1, None, now, now)
    conn.execute(sa.insert(flows).values(**flow.__dict__))
    return flow


def get_flow(conn: Connection, environment_id: str, flow_id: str) -> Flow | None:
    query = sa.select(flows).where(flows.c.id == flow_id, flows.c.environment_id == environment_id)
    row = conn.execute(query).first()
    return Flow(**row._mapping) if row else None


def list_flows(conn: Connection, environment_id: str) -> list[Flow]:
    query = sa.select(flows).where(flows.c.environment_id == environment_id).order_by(flows.c.created_at, flows.c.id)
    return [Flow(**row._mapping) for row in conn.execute(query)]


def update_draft(conn: Connection, environment_id: str, flow_id: str, draft: dict[str, Any]) -> Flow | None:
    statement = (
        sa.update(flows)
        .where(flows.c.id == flow_id, flows.c.environment_id == environment_id)
        .values(draft=draft, draft_revision=flows.c.draft_revision + 1, updated_at=utcnow())
    )
    if conn.execute(statement).rowcount == 0:
        return None
    return get_flow(conn, environment_id, flow_id)


def publish(conn: Connection, environment_id: str, flow_id: str) -> Flow | None:
    """Freeze the current draft as the next version and make it the published one."""
    flow = get_flow(conn, environment_id, flow_id)
    if flow is None:
        return None
    version = (flow.published_version or 0) + 1
    now = utcnow()
    conn.execute(
        sa.insert(flow_versions).values(flow_id=flow_id, version=version, definition=flow.draft, published_at=now)
    )
    conn.execute(sa.update(flows).where(flows.c.id == flow_id).values(published_version=version, updated_at=now))
    return get_flow(conn, environment_id, flow_id)


def published_definition(conn: Connection, flow_id: str, version: int) -> dict[str, Any] | None:
    query = sa.select(flow_versions.c.definition).where(
        flow_versions.c.flow_id == flow_id, flow_versions.c.version == version
    )
    row = conn.execute(query).first()
    return row[0] if row else None
