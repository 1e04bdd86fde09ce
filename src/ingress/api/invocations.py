"""`GET /action-flows/{flowId}/invocations/{flowInvocationId}`: what became of one trigger request.

Shows whether the executor has expanded it yet, which users it reached and
which it ignored (test runs reach test users only), and each user's flow
instance: status, wait outcomes, retries. Keys are per mode, so a key can
name a test and a live invocation: `?mode=test|live` picks one, and without
it the live one is shown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, read_found
from ingress.api.flow_views import invocation_view
from ingress.api.queries import EVENT_SOURCES, choice
from ingress.auth import admin_only
from ingress.jsonio import json_response
from store.expansions import get_invocation
from store.flow_instances import list_for_invocation


@admin_only
async def read_invocation(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    key = request.path_params["flowInvocationId"]
    mode = choice(request, "mode", EVENT_SOURCES)

    def read(conn: Connection) -> dict[str, Any] | None:
        invocation = get_invocation(conn, flow_id, key, mode)
        if invocation is None or invocation.environment_id != env:
            return None
        return invocation_view(invocation, list_for_invocation(conn, invocation))

    return json_response(await read_found(request, "invocation", key, read))


routes = [
    Route("/action-flows/{flow_id}/invocations/{flowInvocationId:path}", read_invocation, methods=["GET"]),
]
