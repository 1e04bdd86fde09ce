"""Card templates: create, list, read, edit the draft, publish, delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.definition import template_ids, template_problems
from flows.problems import Problem, problem
from ingress.api.common import environment, json_object, not_found, services
from ingress.api.problems import refuse_problems
from ingress.api.views import versioned_view
from ingress.auth import admin_only
from ingress.jsonio import json_response
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
async def create_template(request: Request) -> Response:
    env = await environment(request)
    draft = template_draft(await json_object(request))
    template = await services(request).store.write(lambda conn: card_templates.insert_template(conn, env, draft))
    return json_response(versioned_view(template), 201)


@admin_only
async def list_templates(request: Request) -> Response:
    env = await environment(request)
    found = await services(request).store.read(lambda conn: card_templates.list_templates(conn, env))
    return json_response({"data": [versioned_view(template) for template in found]})


@admin_only
async def get_template(request: Request) -> Response:
    env = await environment(request)
    template_id = request.path_params["templateId"]
    template = await services(request).store.read(lambda conn: card_templates.get_template(conn, env, template_id))
    if template is None:
        raise not_found("card_template", template_id)
    return json_response(versioned_view(template))


@admin_only
async def put_template(request: Request) -> Response:
    env = await environment(request)
    template_id = request.path_params["templateId"]
    draft = template_draft(await json_object(request))
    template = await services(request).store.write(
        lambda conn: card_templates.update_draft(conn, env, template_id, draft)
    )
    if template is None:
        raise not_found("card_template", template_id)
    return json_response(versioned_view(template))


@admin_only
async def publish_template(request: Request) -> Response:
    env = await environment(request)
    template_id = request.path_params["templateId"]
    template = await services(request).store.write(lambda conn: card_templates.publish(conn, env, template_id))
    if template is None:
        raise not_found("card_template", template_id)
    return json_response(versioned_view(template))


@admin_only
async def delete_template(request: Request) -> Response:
    env = await environment(request)
    template_id = request.path_params["templateId"]
    if not await services(request).store.write(lambda conn: card_templates.delete_template(conn, env, template_id)):
        raise not_found("card_template", template_id)
    return Response(status_code=204)


routes = [
    Route("/card-templates", create_template, methods=["POST"]),
    Route("/card-templates", list_templates, methods=["GET"]),
    Route("/card-templates/{templateId}", get_template, methods=["GET"]),
    Route("/card-templates/{templateId}", put_template, methods=["PUT"]),
    Route("/card-templates/{templateId}", delete_template, methods=["DELETE"]),
    Route("/card-templates/{templateId}/publish", publish_template, methods=["POST"]),
]
