"""Flows: an editable draft and immutable published versions.

Only what the ingress needs lives here (variables for mappings, whether and
which version is published); the flow definition itself is opaque JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import flow_versions, flows
from store.versioned import Versioned, VersionedDocuments

Flow = Versioned

_FLOWS = VersionedDocuments(flows, flow_versions, key="flow_id", content="definition", id_prefix="flw")

insert_flow = _FLOWS.insert
get_flow = _FLOWS.get
list_flows = _FLOWS.list
update_draft = _FLOWS.update_draft
publish = _FLOWS.publish
published_definition = _FLOWS.published

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

    @classmethod
    def of(cls, draft: dict[str, Any], published: dict[str, Any] | None) -> DeclaredVariables:
        """The declarations of a draft and a published definition (None: never published)."""
        return cls(_variables(draft), None if published is None else _variables(published))

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
        sa.select(flows.c.draft, PUBLISHED.c.definition)
        .select_from(FLOWS_WITH_PUBLISHED)
        .where(flows.c.id == flow_id, flows.c.environment_id == environment_id)
    )
    row = conn.execute(query).first()
    return None if row is None else DeclaredVariables.of(row.draft, row.definition)
