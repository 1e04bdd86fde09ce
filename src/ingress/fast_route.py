"""Serve one hot route ahead of Starlette's middleware stack and router."""

from __future__ import annotations

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send


class FastRoute:
    """ASGI middleware: a request that fully matches `route` (path and method) goes straight to it.

    Starlette's exception middleware and router cost ~5 µs a request, some
    5% of the server's CPU per webhook. Everything else, including the
    route's other methods (answered 405 by the router), goes on to `app`.
    Installed as app middleware, it sits inside ServerErrorMiddleware, so an
    unexpected error is still answered 500 in our error shape.
    """

    def __init__(self, app: ASGIApp, route: Route) -> None:
        self._app = app
        self._route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            match, child_scope = self._route.matches(scope)
            if match is Match.FULL:
                scope.update(child_scope)
                await self._route.handle(scope, receive, send)
                return
        await self._app(scope, receive, send)
