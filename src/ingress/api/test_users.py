"""Test users: external test users and workbench members, the only users test runs reach."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import delete_found, environment, field, json_object, refuse_unknown, services
from ingress.api.flow_views import test_user_view
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from store import test_users


def _text(value: object) -> bool:
    return isinstance(value, str) and value.strip() != "" and len(value) <= 256


@admin_only
async def add_test_user(request: Request) -> Response:
    env = await environment(request)
    data = await json_object(request)
    refuse_unknown(data, {"userId", "name", "kind"})
    user_id = field(data, "userId", _text, "a non-empty string of at most 256 characters", None)
    if user_id is None:
        raise ApiError(422, "invalid_field", "userId is required", path="$.userId")
    name = field(data, "name", lambda v: v is None or _text(v), "a non-empty string", None)
    kind = field(data, "kind", lambda v: v in test_users.KINDS, f"one of {', '.join(test_users.KINDS)}", "external")
    user = await services(request).store.write(lambda conn: test_users.add_test_user(conn, env, user_id, kind, name))
    if user is None:
        raise ApiError(409, "test_user_exists", f"{user_id!r} is a test user already")
    return json_response(test_user_view(user), 201)


@admin_only
async def list_test_users(request: Request) -> Response:
    env = await environment(request)
    found = await services(request).store.read(lambda conn: test_users.list_test_users(conn, env))
    return json_response({"data": [test_user_view(user) for user in found]})


@admin_only
async def remove_test_user(request: Request) -> Response:
    env = await environment(request)
    user_id = request.path_params["userId"]
    return await delete_found(
        request, "test_user", user_id, lambda conn: test_users.remove_test_user(conn, env, user_id)
    )


routes = [
    Route("/test-users", add_test_user, methods=["POST"]),
    Route("/test-users", list_test_users, methods=["GET"]),
    Route("/test-users/{userId:path}", remove_test_user, methods=["DELETE"]),
]
