"""`GET|PATCH /v1/{env}/settings`: per-environment choices (e.g. `testAnalytics`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, field, json_object, refuse_unknown, services
from ingress.auth import admin_only
from ingress.jsonio import json_response
from store.environment_settings import CHOICES, get_settings, update_settings


@admin_only
async def read_settings(request: Request) -> Response:
    env = await environment(request)
    return json_response(await services(request).store.read(lambda conn: get_settings(conn, env)))


@admin_only
async def patch_settings(request: Request) -> Response:
    env = await environment(request)
    data = await json_object(request)
    refuse_unknown(data, set(CHOICES))
    changes: dict[str, str] = {}
    for name, allowed in CHOICES.items():
        if name in data:
            changes[name] = field(data, name, allowed.__contains__, f"one of {', '.join(allowed)}", None)
    return json_response(await services(request).store.write(lambda conn: update_settings(conn, env, changes)))


routes = [
    Route("/settings", read_settings, methods=["GET"]),
    Route("/settings", patch_settings, methods=["PATCH"]),
]
