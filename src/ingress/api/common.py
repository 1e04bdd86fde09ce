"""What every management endpoint needs: services, the environment, JSON input checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from ingress.body import BodyTimedOut, BodyTooLarge, read_body
from ingress.errors import ApiError
from ingress.services import Services
from store.environments import get_environment

T = TypeVar("T")

MAX_BODY_BYTES = 2 * 1024 * 1024
CLOSE = {"Connection": "close"}  # the rest of a body that was not read is never read


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


async def environment(request: Request) -> str:
    """The `{env}` of the path, which must exist (404 otherwise)."""
    env_id: str = request.path_params["env"]
    if await services(request).store.read(lambda conn: get_environment(conn, env_id)) is None:
        raise not_found("environment", env_id)
    return env_id


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400/408/413 saying why not."""
    timeout = services(request).settings.body_timeout_seconds
    try:
        raw = await read_body(request.receive, MAX_BODY_BYTES, request.headers.get("content-length"), timeout)
    except BodyTooLarge:
        raise ApiError(413, "body_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes", headers=CLOSE) from None
    except BodyTimedOut:
        raise ApiError(408, "body_timeout", f"the body did not arrive within {timeout:g} s", headers=CLOSE) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def refuse_unknown(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        message = f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        raise ApiError(422, "unknown_field", message, path=f"$.{unknown[0]}")


def field(data: dict[str, Any], name: str, check: Callable[[Any], bool], expected: str, default: T) -> Any:
    """`data[name]` if present and passing `check`, `default` if absent; a 422 naming the field otherwise."""
    if name not in data:
        return default
    value = data[name]
    if not check(value):
        raise ApiError(422, "invalid_field", f"{name} must be {expected}", path=f"$.{name}")
    return value


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_parameter", f"{name} must be an integer from {low} to {high}")
    return int(raw)


def not_found(kind: str, identifier: str) -> ApiError:
    return ApiError(404, f"{kind}_not_found", f"no {kind} {identifier!r}")


async def read_found(request: Request, kind: str, identifier: str, query: Callable[[Connection], T | None]) -> T:
    """What `query` reads, or a 404 `{kind}_not_found` when it finds nothing."""
    found = await services(request).store.read(query)
    if found is None:
        raise not_found(kind, identifier)
    return found


async def delete_found(request: Request, kind: str, identifier: str, delete: Callable[[Connection], bool]) -> Response:
    """204 once `delete` removed something; a 404 `{kind}_not_found` when there was nothing to remove."""
    if not await services(request).store.write(delete):
        raise not_found(kind, identifier)
    return Response(status_code=204)
