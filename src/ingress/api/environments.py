"""The Environments API: create, list and read the namespaces `/v1/{env}/…` serves (admin token).

There is no DELETE: an environment holds flows, triggers whose URLs senders
post to, credentials and logs, and removing all of that is not a one-call
operation. An id appears in every URL of its environment, so it is a URL-safe
slug, and `environments` is refused: `/v1/environments/…` is this API.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from ingress.api.common import field, json_object, read_found, refuse_unknown, refuse_unreadable_parameters, services
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from store import environments
from store.clock import iso
from store.environments import Environment

ID_PATTERN = "^[a-z0-9][a-z0-9-]{0,62}$"
RESERVED_IDS = frozenset({"environments"})
MAX_NAME = 200


def environment_view(environment: Environment) -> dict[str, Any]:
    return {"id": environment.id, "name": environment.name, "createdAt": iso(environment.created_at)}


def _id(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(ID_PATTERN, value) is not None and value not in RESERVED_IDS


def _name(value: object) -> bool:
    return isinstance(value, str) and value.strip() != "" and len(value) <= MAX_NAME


@admin_only
async def create_environment(request: Request) -> Response:
    data = await json_object(request)
    refuse_unknown(data, {"id", "name"})
    expected = "1-63 lower-case letters, digits and hyphens, not starting with a hyphen, and not 'environments'"
    env_id = field(data, "id", _id, expected, None)
    if env_id is None:
        raise ApiError(422, "invalid_field", "id is required", path="$.id")
    name = field(data, "name", _name, f"a non-empty string of at most {MAX_NAME} characters", env_id)
    created = await services(request).store.write(lambda conn: environments.create_environment(conn, env_id, name))
    if created is None:
        raise ApiError(409, "environment_exists", f"environment {env_id!r} exists already", path="$.id")
    return json_response(environment_view(created), 201)


@admin_only
async def list_environments(request: Request) -> Response:
    found = await services(request).store.read(environments.list_environments)
    return json_response({"data": [environment_view(environment) for environment in found]})


@admin_only
async def read_environment(request: Request) -> Response:
    refuse_unreadable_parameters(request)
    env_id = request.path_params["envId"]
    found = await read_found(request, "environment", env_id, lambda conn: environments.get_environment(conn, env_id))
    return json_response(environment_view(found))


# Ahead of the `/v1/{env}` mount, which would otherwise take `/v1/environments/{envId}`; mounted
# itself so that other methods on it are a 405 rather than that mount's 404.
routes: list[BaseRoute] = [
    Route("/v1/environments", create_environment, methods=["POST"]),
    Route("/v1/environments", list_environments, methods=["GET"]),
    Mount("/v1/environments", routes=[Route("/{envId}", read_environment, methods=["GET"])]),
]
