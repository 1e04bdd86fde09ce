"""Flows: create, read, edit the draft (checked whole: every problem with its path), publish."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sqlalchemy.engine import Connection

from flows.definition import flow_problems
from ingress.api.card_templates import unpublished_templates
from ingress.api.common import environment, json_object, not_found, services
from ingress.api.problems import refuse_problems
from ingress.api.views import versioned_view
from ingress.auth import admin_only
from ingress.jsonio import json_response
from store import flows


def flow_draft(data: dict[str, Any]) -> dict[str, Any]:
    """A flow body that passed schemas/flow.schema.json and the rules across steps (422 with every problem)."""
    refuse_problems("invalid_flow", "flow", flow_problems(data))
    return {"variables": [], "steps": [], **data}


@admin_only
async def create_flow(request: Request) -> Response:
    env = await environment(request)
    draft = flow_draft(await json_object(request))
    flow = await services(request).store.write(lambda conn: flows.insert_flow(conn, env, draft))
    return json_response(versioned_view(flow), 201)


@admin_only
async def list_flows(request: Request) -> Response:
    env = await environment(request)
    found = await services(request).store.read(lambda conn: flows.list_flows(conn, env))
    return json_response({"data": [versioned_view(flow) for flow in found]})


@admin_only
async def get_flow(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    flow = await services(request).store.read(lambda conn: flows.get_flow(conn, env, flow_id))
    if flow is None:
        raise not_found("flow", flow_id)
    return json_response(versioned_view(flow))


@admin_only
async def put_flow(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    draft = flow_draft(await json_object(request))
    flow = await services(request).store.write(lambda conn: flows.update_draft(conn, env, flow_id, draft))
    if flow is None:
        raise not_found("flow", flow_id)
    services(request).configuration_changed()
    return json_response(versioned_view(flow))


@admin_only
async def publish_flow(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]

    def publish(conn: Connection) -> flows.Flow | None:
        flow = flows.get_flow(conn, env, flow_id)
        if flow is None:
            return None
        refuse_problems("flow_not_publishable", "flow", unpublished_templates(conn, env, flow.draft.get("steps", [])))
        return flows.publish(conn, env, flow_id)

    flow = await services(request).store.write(publish)
    if flow is None:
        raise not_found("flow", flow_id)
    services(request).configuration_changed()
    return json_response(versioned_view(flow))


routes = [
    Route("/action-flows", create_flow, methods=["POST"]),
    Route("/action-flows", list_flows, methods=["GET"]),
    Route("/action-flows/{flow_id}", get_flow, methods=["GET"]),
    Route("/action-flows/{flow_id}", put_flow, methods=["PUT"]),
    Route("/action-flows/{flow_id}/publish", publish_flow, methods=["POST"]),
]
