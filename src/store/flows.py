"""Flows: an editable draft and immutable published versions.

Only what the ingress needs lives here (variables for mappings, whether and
which version is published, whether the flow is archived); the flow definition
itself is opaque JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.tables import flow_versions, flows
from store.versioned import Versioned, VersionedDocuments


@dataclass(frozen=True)
class Flow(Versioned):
    archived_at: datetime | None = None  # archived: it starts nothing new and is not edited (docs/flows.md)


class FlowArchived(Exception):
    """The flow is archived: it is not edited, published, given triggers or started until it is unarchived."""

    def __init__(self, flow_id: str) -> None:
        super().__init__(f"flow {flow_id!r} is archived")
        self.flow_id = flow_id


_FLOWS = VersionedDocuments(flows, flow_versions, key="flow_id", content="definition", id_prefix="flw", document=Flow)

insert_flow = _FLOWS.insert
get_flow = _FLOWS.get
published_definition = _FLOWS.published


def list_flows(conn: Connection, environment_id: str, *, archived: bool | None = False) -> list[Flow]:
    """The environment's flows oldest first: those not archived (the default), the archived ones, or all (None)."""
    if archived is None:
        return _FLOWS.list(conn, environment_id)
    column = flows.c.archived_at
    return _FLOWS.list(conn, environment_id, column.is_not(None) if archived else column.is_(None))


def refuse_archived(conn: Connection, environment_id: str, flow_id: str, *, lock: bool = False) -> None:
    """FlowArchived if the flow is archived (nothing if it is not, or there is no such flow). `lock`: its row
    is locked for an update until this transaction ends (PostgreSQL; SQLite has one writer)."""
    query = sa.select(flows.c.archived_at).where(flows.c.id == flow_id, flows.c.environment_id == environment_id)
    if lock:
        query = query.with_for_update(key_share=True)  # FOR NO KEY UPDATE, as the update would
    if conn.execute(query).scalar_one_or_none() is not None:
        raise FlowArchived(flow_id)


def update_draft(conn: Connection, environment_id: str, flow_id: str, draft: dict[str, Any]) -> Flow | None:
    """Replace the draft of a flow that is not archived (FlowArchived otherwise)."""
    refuse_archived(conn, environment_id, flow_id)
    return _FLOWS.update_draft(conn, environment_id, flow_id, draft)


def publish(conn: Connection, environment_id: str, flow_id: str) -> Flow | None:
    """Publish the draft of a flow that is not archived (FlowArchived otherwise).

    The flow's row is locked before the publication takes its time: a settle of a live delivery, which
    share-locks it (store.event_dispatch), either came first, and its run is of the version before, or
    waits for this publication and sees it, whatever its event's time. The update alone would lock it only
    after the time was taken, letting an event timed in between be settled as if the flow were unpublished.
    """
    refuse_archived(conn, environment_id, flow_id, lock=True)
    return _FLOWS.publish(conn, environment_id, flow_id)


def set_archived(conn: Connection, environment_id: str, flow_id: str, *, archived: bool) -> Flow | None:
    """Archive or unarchive the flow; None if there is no such flow. Idempotent: archiving an archived flow
    keeps the time it was archived at, and only a change moves `updated_at`."""
    now = utcnow()
    changes = sa.update(flows).where(
        flows.c.id == flow_id,
        flows.c.environment_id == environment_id,
        flows.c.archived_at.is_(None) if archived else flows.c.archived_at.is_not(None),
    )
    conn.execute(changes.values(archived_at=now if archived else None, updated_at=now))
    return get_flow(conn, environment_id, flow_id)


@dataclass(frozen=True)
class Publication:
    """A published flow's version now, and when it was first published (when its triggers took effect at the
    earliest: store.triggers.took_effect)."""

    version: int
    first_at: datetime


_PUBLICATIONS = (
    sa.select(flows.c.id, flows.c.published_version, sa.func.min(flow_versions.c.published_at))
    .join(flow_versions, flow_versions.c.flow_id == flows.c.id)
    .where(flows.c.id.in_(sa.bindparam("flow_ids", expanding=True)))
    .group_by(flows.c.id, flows.c.published_version)
)  # built once: every settle of an event trigger's live deliveries runs it


def publications(conn: Connection, flow_ids: Iterable[str]) -> dict[str, Publication]:
    """The publication of each of these flows; one never published is left out."""
    rows = conn.execute(_PUBLICATIONS, {"flow_ids": sorted(set(flow_ids))})
    return {flow_id: Publication(version, first_at) for flow_id, version, first_at in rows}


#: The version `flows.published_version` names, joined by `FLOWS_WITH_PUBLISHED` (NULLs: never published).
PUBLISHED = flow_versions.alias("published")
FLOWS_WITH_PUBLISHED = flows.outerjoin(
    PUBLISHED, sa.and_(PUBLISHED.c.flow_id == flows.c.id, PUBLISHED.c.version == flows.c.published_version)
)


@dataclass(frozen=True)
class DeclaredVariables:
    """A flow's variable declarations, of its draft and of its published version, as one read saw them."""

    draft: list[dict[str, Any]]
    published: list[dict[str, Any]] | None  # None: never published
    published_version: int | None  # whose `published` they are: a live start checked against them runs it

    @classmethod
    def of(cls, draft: dict[str, Any], published: dict[str, Any] | None, version: int | None) -> DeclaredVariables:
        """The declarations of a draft and of published `version`'s definition (None: never published)."""
        return cls(_variables(draft), None if published is None else _variables(published), version)

    def for_run(self, *, live: bool) -> list[dict[str, Any]]:
        """What a trigger's mapping applies: the published version's for a live run (the draft's until the
        first publish), the draft's for a test run."""
        return self.published if live and self.published is not None else self.draft


def _variables(definition: dict[str, Any]) -> list[dict[str, Any]]:
    return list(definition.get("variables") or [])


def declared_variables(conn: Connection, environment_id: str, flow_id: str) -> DeclaredVariables | None:
    """The declared variables of the flow's draft and published version, in one query; None if there is no
    such flow in the environment."""
    query = (
        sa.select(flows.c.draft, PUBLISHED.c.definition, flows.c.published_version)
        .select_from(FLOWS_WITH_PUBLISHED)
        .where(flows.c.id == flow_id, flows.c.environment_id == environment_id)
    )
    row = conn.execute(query).first()
    return None if row is None else DeclaredVariables.of(row.draft, row.definition, row.published_version)
