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
from store import card_templates


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
        request, "card_template", template_id, lambda conn: card_templates.delete_template(conn, env, template_id)
    )


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
