"""The Starlette application: webhook endpoint, management API, OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router

from ingress import editor, marketo, sfmc
from ingress.api import (
    action_flow,
    analytics,
    api_key_roll,
    bulk_starts,
    card_templates,
    cards,
    credentials,
    customers,
    deliveries,
    environment_settings,
    environments,
    events,
    flow_archive,
    flows,
    invocations,
    preview,
    requests,
    samples,
    segments,
    send_test,
    test_data,
    test_users,
    triggers,
)
from ingress.api.flow_archive import handle_flow_archived
from ingress.api.known_parameters import check_queries
from ingress.api.openapi import openapi_document, openapi_endpoint
from ingress.errors import (
    STORE_ERRORS,
    ApiError,
    handle_api_error,
    handle_client_gone,
    handle_http_exception,
    handle_store_error,
    handle_unexpected,
)
from ingress.fast_route import FastRoute
from ingress.hooks import HookPipeline, hook_endpoint
from ingress.jsonio import json_response
from ingress.metrics import metrics_endpoint
from ingress.oauth import token_endpoint
from ingress.readiness import readiness
from ingress.services import Services
from ingress.settings import Settings
from store.flows import FlowArchived


async def health(request: Request) -> Response:
    return json_response({"ok": True})


def management_routes() -> list[BaseRoute]:
    return [
        *flows.routes,
        *flow_archive.routes,
        *triggers.routes,
        *api_key_roll.routes,
        *samples.routes,
        *preview.routes,
        *send_test.routes,
        *test_data.routes,  # what the `testAnalytics` setting hides, removed
        *requests.routes,
        *card_templates.routes,
        *cards.routes,
        *analytics.routes,
        *test_users.routes,
        *environment_settings.routes,
        *invocations.routes,
        *credentials.routes,
        *action_flow.routes,
        *events.routes,
        *deliveries.routes,
        *customers.routes,
        *segments.routes,
        *bulk_starts.routes,
    ]


def create_app(settings: Settings) -> Starlette:
    """The app; its services (store, sandbox pool, caches) start and stop with its lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.start(settings)
        app.state.services = services
        app.state.pipeline = HookPipeline(services)
        try:
            await services.retention.prune_all()
            yield
        finally:
            await services.close()

    # Every method, so that the pipeline logs the wrong ones (405) too; and with a trailing slash, which a
    # sender's URL field may add, rather than a redirect built from the request's own Host header.
    hooks = Route("/hooks/{hook_id}", hook_endpoint)
    app = Starlette(
        routes=[
            hooks,
            Route("/hooks/{hook_id}/", hook_endpoint),
            Route("/healthz", health, methods=["GET"]),
            Route("/readyz", readiness, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            Route("/oauth/token", token_endpoint, methods=["POST"]),
            *editor.routes,
            *sfmc.routes,
            *marketo.routes,
            *environments.routes,
            Mount("/v1/{env}", routes=management_routes()),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            FlowArchived: handle_flow_archived,
            HTTPException: handle_http_exception,
            ClientDisconnect: handle_client_gone,
            **dict.fromkeys(STORE_ERRORS, handle_store_error),
            Exception: handle_unexpected,
        },
        middleware=[Middleware(FastRoute, route=hooks)],
        lifespan=lifespan,
    )
    check_queries(app.router.routes, openapi_document())  # an unknown query parameter is a 400, not ignored
    # A path with an extra slash is a 404, not a redirect whose Location is built from the request's own Host.
    for router in (app.router, *(route.app for route in app.router.routes if isinstance(route, Mount))):
        if isinstance(router, Router):
            router.redirect_slashes = False
    return app
