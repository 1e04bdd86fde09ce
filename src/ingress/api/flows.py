"""Flows, minimal: create, read, edit the draft, publish (issue 4 completes them)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, field, json_object, not_found, refuse_unknown, services
from ingress.api.views import flow_view
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from mapper import MappingSpecError
from mapper.variables import FlowVariables
from store import flows

FLOW_FIELDS = {"name", "variables", "steps"}


def flow_draft(data: dict[str, Any]) -> dict[str, Any]:
    """A flow body checked as far as the ingress needs it (name, variable declarations)."""
    refuse_unknown(data, FLOW_FIELDS)
    name = field(data, "name", lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string", None)
    if name is None:
        raise ApiError(422, "invalid_field", "name is required", path="$.name")
    variables = field(data, "variables", _list_of_objects, "a list of variable objects", [])
    steps = field(data, "steps", lambda v: isinstance(v, list), "a list", [])
    try:
        FlowVariables(variables)
    except MappingSpecError as error:
        raise ApiError(422, "invalid_field", error.message, path=error.path) from None
    return {"name": name, "variables": variables, "steps": steps}


def _list_of_objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


@admin_only
async def create_flow(request: Request) -> Response:
    env = await environment(request)
    draft = flow_draft(await json_object(request))
    flow = await services(request).store.write(lambda conn: flows.insert_flow(conn, env, draft))
    return json_response(flow_view(flow), 201)


@admin_only
async def list_flows(request: Request) -> Response:
    env = await environment(request)
    found = await services(request).store.read(lambda conn: flows.list_flows(conn, env))
    return json_response({"data": [flow_view(flow) for flow in found]})


@admin_only
async def get_flow(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    flow = await services(request).store.read(lambda conn: flows.get_flow(conn, env, flow_id))
    if flow is None:
        raise not_found("flow", flow_id)
    return json_response(flow_view(flow))


@admin_only
async def put_flow(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    draft = flow_draft(await json_object(request))
    flow = await services(request).store.write(lambda conn: flows.update_draft(conn, env, flow_id, draft))
    if flow is None:
        raise not_found("flow", flow_id)
    services(request).configuration_changed()
    return json_response(flow_view(flow))


@admin_only
async def publish_flow(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    flow = await services(request).store.write(lambda conn: flows.publish(conn, env, flow_id))
    if flow is None:
        raise not_found("flow", flow_id)
    services(request).configuration_changed()
    return json_response(flow_view(flow))


routes = [
    Route("/action-flows", create_flow, methods=["POST"]),
    Route("/action-flows", list_flows, methods=["GET"]),
    Route("/action-flows/{flow_id}", get_flow, methods=["GET"]),
    Route("/action-flows/{flow_id}", put_flow, methods=["PUT"]),
    Route("/action-flows/{flow_id}/publish", publish_flow, methods=["POST"]),
]
