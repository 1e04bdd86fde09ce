"""`GET /triggers/{triggerId}/deliveries`: an event trigger's delivery log, newest first, in cursor pages.

Any trigger can be asked: a webhook trigger or an API trigger has no
deliveries (an empty page), as an API or event trigger has an empty request log.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, query_int, read_found
from ingress.api.cursors import Binding
from ingress.api.queries import choice
from ingress.api.views import delivery_view
from ingress.auth import admin_only
from store import triggers
from store.event_delivery_log import STATUSES, Delivery, list_deliveries

MAX_PAGE = 200


@admin_only
async def list_trigger_deliveries(request: Request) -> Response:
    env = await environment(request)
    trigger_id = request.path_params["trigger_id"]
    status = choice(request, "status", STATUSES)
    cursors = Binding("event-deliveries", "trigger or status", (env, trigger_id, status))
    limit, before = query_int(request, "limit", 50, 1, MAX_PAGE), cursors.requested(request)

    def page(conn: Connection) -> tuple[list[Delivery], int | None] | None:
        if triggers.get_trigger(conn, env, trigger_id) is None:
            return None
        return list_deliveries(conn, env, trigger_id, status=status, limit=limit, before=before)

    deliveries, next_seq = await read_found(request, "trigger", trigger_id, page)
    return cursors.page([delivery_view(delivery) for delivery in deliveries], next_seq)


routes = [Route("/triggers/{trigger_id}/deliveries", list_trigger_deliveries, methods=["GET"])]
