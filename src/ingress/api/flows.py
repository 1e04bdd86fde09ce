"""Flows: create, read, edit the draft (checked whole: every problem with its path), publish."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from flows.definition import flow_problems
from ingress.api.card_templates import unpublished_templates
from ingress.api.problems import refuse_problems
from ingress.api.versioned import VersionedEndpoints
from store import flows


def flow_draft(data: dict[str, Any]) -> dict[str, Any]:
    """A flow body that passed schemas/flow.schema.json and the rules across steps (422 with every problem)."""
    refuse_problems("invalid_flow", "flow", flow_problems(data))
    return {"variables": [], "steps": [], **data}


def publish_checked(conn: Connection, environment_id: str, flow_id: str) -> flows.Flow | None:
    """Publish the draft unless a card template it sends is missing or unpublished (422 listing them)."""
    flow = flows.get_flow(conn, environment_id, flow_id)
    if flow is None:
        return None
    steps = flow.draft.get("steps", [])
    refuse_problems("flow_not_publishable", "flow", unpublished_templates(conn, environment_id, steps))
    return flows.publish(conn, environment_id, flow_id)


# Hooks map payloads with the flow's variables, so its edits and publications reload their configuration.
routes = VersionedEndpoints(
    "/action-flows",
    id_param="flow_id",
    kind="flow",
    checked_draft=flow_draft,
    insert=flows.insert_flow,
    list_all=flows.list_flows,
    get=flows.get_flow,
    update_draft=flows.update_draft,
    publish=publish_checked,
    changes_configuration=True,
).routes()
