"""Card templates: create, list, read, edit the draft, publish, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.definition import template_ids, template_problems
from flows.problems import Problem, problem
from ingress.api.common import delete_found, environment
from ingress.api.problems import refuse_problems
from ingress.api.versioned import VersionedEndpoints
from ingress.auth import admin_only
from ingress.errors import ApiError
from store import card_templates, expansions, flows


def template_draft(data: dict[str, Any]) -> dict[str, Any]:
    refuse_problems("invalid_card_template", "card template", template_problems(data))
    return data


def unpublished_templates(conn: Connection, environment_id: str, steps: list[dict[str, Any]]) -> list[Problem]:
    """A flow may be published only when every card template it sends is published (live runs need them)."""
    used = template_ids(steps)
    found = card_templates.get_templates(conn, environment_id, set(used))
    problems = []
    for template_id, path in used.items():
        template = found.get(template_id)
        if template is None:
            problems.append(problem(path, f"card template {template_id!r} does not exist"))
        elif template.published_version is None:
            problems.append(problem(path, f"card template {template_id!r} is not published"))
    return problems


@admin_only
async def delete_template(request: Request) -> Response:
    env = await environment(request)
    template_id = request.path_params["templateId"]
    return await delete_found(
        request, "card_template", template_id, lambda conn: _delete_unused(conn, env, template_id)
    )


def _delete_unused(conn: Connection, environment_id: str, template_id: str) -> bool:
    """Delete the template unless a flow's draft, published version or a run still to start or under way
    sends it: those runs would fail at that step. An archived flow's versions start nothing new, so they do
    not keep the template; nor does an older published version, unless runs accepted under it (before it was
    archived, or replaced) have still to start."""
    senders = _flows_sending(conn, environment_id, template_id)
    if senders:
        message = (
            f"flows {', '.join(senders)} send this card template (a draft, the published version, or runs still "
            "to start or under way); remove it from them (or archive them) first"
        )
        raise ApiError(409, "card_template_in_use", message)
    return card_templates.delete_template(conn, environment_id, template_id)


def _flows_sending(conn: Connection, environment_id: str, template_id: str) -> list[str]:
    """The flows whose definitions that are in use send the template: what their next runs would start with
    (unless archived), what their pending invocations will start with, what their unfinished runs run."""
    pending = expansions.pending_flow_versions(conn, environment_id)
    tested = {flow_id for flow_id, version in pending if version is None}
    versions = {(flow_id, version) for flow_id, version in pending if version is not None}
    definitions: list[tuple[str, dict[str, Any]]] = []
    for flow in flows.list_flows(conn, environment_id, archived=None):
        if flow.archived_at is None or flow.id in tested:
            definitions.append((flow.id, flow.draft))
        if flow.archived_at is None and flow.published_version is not None:
            versions.add((flow.id, flow.published_version))
    for flow_id, version in sorted(versions):
        definitions.append((flow_id, flows.published_definition(conn, flow_id, version) or {}))
    running = expansions.running_snapshots(conn, environment_id)
    for snapshot_id, definition in expansions.load_snapshots(conn, set(running)).items():
        definitions.append((running[snapshot_id], definition))
    found = {
        flow_id for flow_id, definition in definitions if template_id in template_ids(definition.get("steps") or [])
    }
    return sorted(found)


routes = [
    *VersionedEndpoints(
        "/card-templates",
        id_param="templateId",
        kind="card_template",
        checked_draft=template_draft,
        insert=card_templates.insert_template,
        list_all=card_templates.list_templates,
        get=card_templates.get_template,
        update_draft=card_templates.update_draft,
        publish=card_templates.publish,
    ).routes(),
    Route("/card-templates/{templateId}", delete_template, methods=["DELETE"]),
]
