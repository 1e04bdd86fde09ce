"""`GET /analytics/events`: what flows did, oldest first, filtered, in cursor pages.

The environment's `testAnalytics` setting decides whether events of test
runs appear at all; with `exclude` they are left out even when asked for.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, query_int, services
from ingress.api.cursors import Binding
from ingress.api.flow_views import event_view
from ingress.api.queries import EVENT_SOURCES, choice, timestamp, until
from ingress.auth import admin_only
from store.analytics import AnalyticsEvent, EventFilter, list_events
from store.environment_settings import get_settings


@admin_only
async def list_analytics_events(request: Request) -> Response:
    env = await environment(request)
    params = request.query_params
    where = EventFilter(
        flow_id=params.get("flowId") or None,
        event_name=params.get("eventName") or None,
        event_source=choice(request, "eventSource", EVENT_SOURCES),
        user_id=params.get("userId") or None,
        since=timestamp(request, "since"),
        until=until(request),
    )
    bound = (env, where.flow_id, where.event_name, where.event_source, where.user_id, where.since, where.until)
    cursors = Binding("analytics-events", "flowId, eventName, eventSource, userId, since or until", bound)
    after, limit = cursors.requested(request), query_int(request, "limit", 100, 1, 1000)

    def page(conn: Connection) -> tuple[list[AnalyticsEvent], int | None]:
        settings = get_settings(conn, env)
        shown = where if settings and settings["testAnalytics"] == "include" else replace(where, include_test=False)
        return list_events(conn, env, shown, after=after, limit=limit)

    events, next_seq = await services(request).store.read(page)
    return cursors.page([event_view(event) for event in events], next_seq)


routes = [Route("/analytics/events", list_analytics_events, methods=["GET"])]
