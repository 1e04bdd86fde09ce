"""Flows: an editable draft and immutable published versions.

Only what the ingress needs lives here (variables for mappings, whether and
which version is published); the flow definition itself is opaque JSON.
"""

from __future__ import annotations

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
