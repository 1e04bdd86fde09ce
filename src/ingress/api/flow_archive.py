"""Archiving a flow: `POST /v1/{env}/action-flows/{flowId}/archive` and `…/unarchive` (admin token).

The seed retires a flow once its outreach is over ("archive the Action
Flow, and delete the Segment"). An archived flow starts nothing new through
any door: the store refuses its invocations (`flow_archived`, store.invocations)
and the bulk tasks, triggers, edits and publications asked of it (FlowArchived,
store.flows), which every endpoint answers with the same 409 here. What it
accepted before runs to its end. It is left out of `GET /action-flows` unless
asked for (`?archived=true`), and its versions no longer keep a card template
or its segment triggers a segment from being deleted (docs/flows.md, Archiving
a flow). Both calls are idempotent and answer the flow.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, not_found, services
from ingress.api.queries import choice
from ingress.api.views import versioned_view
from ingress.auth import admin_only
from ingress.errors import error_response
from ingress.jsonio import json_response
from store import flows


async def _set_archived(request: Request, *, archived: bool) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    flow = await services(request).store.write(lambda conn: flows.set_archived(conn, env, flow_id, archived=archived))
    if flow is None:
        raise not_found("flow", flow_id)
    return json_response(versioned_view(flow))


@admin_only
async def archive(request: Request) -> Response:
    return await _set_archived(request, archived=True)


@admin_only
async def unarchive(request: Request) -> Response:
    return await _set_archived(request, archived=False)


def archived_filter(request: Request) -> dict[str, Any]:
    """`GET /action-flows`' filter: the flows not archived, or with `?archived=true` the archived ones."""
    return {"archived": choice(request, "archived", ("true", "false")) == "true"}


async def handle_flow_archived(request: Request, exc: Exception) -> Response:
    """The answer to anything asked of an archived flow that would change or start it."""
    assert isinstance(exc, flows.FlowArchived)
    message = f"flow {exc.flow_id} is archived: unarchive it first (POST …/action-flows/{exc.flow_id}/unarchive)"
    return error_response(409, "flow_archived", message)


routes = [
    Route("/action-flows/{flow_id}/archive", archive, methods=["POST"]),
    Route("/action-flows/{flow_id}/unarchive", unarchive, methods=["POST"]),
]
