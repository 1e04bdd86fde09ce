"""Error answers: `{"error": {"code", "message", "requestId"?, …}}`, nothing more.

Messages are written by us, never copied from a secret or a mapping's source;
an unexpected exception is logged with its traceback and answered with a
bare 500.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route

from ingress.jsonio import json_response

log = logging.getLogger("flowhook.ingress")

#: How many `{path, message}` problems a 422 lists; its message counts them all.
MAX_LISTED_PROBLEMS = 100


class ApiError(Exception):
    """An expected failure with its HTTP status and machine-readable code."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **details: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return error_body(self.code, self.message, request_id, **self.details)


def error_body(code: str, message: str, request_id: str | None = None, **details: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if request_id is not None:
        error["requestId"] = request_id
    error.update({key: value for key, value in details.items() if value is not None})
    return {"error": error}


def listed_problems(problems: Sequence[dict[str, str]]) -> tuple[str, list[dict[str, str]]]:
    """The problems a 422 lists (the first MAX_LISTED_PROBLEMS), and how its message counts them:
    `2 problems`, or `250 problems; the first 100 are listed`. A hostile input can hold hundreds of
    thousands of problems; the answer stays a few dozen KiB."""
    count = f"{len(problems)} problem{'' if len(problems) == 1 else 's'}"
    if len(problems) > MAX_LISTED_PROBLEMS:
        count += f"; the first {MAX_LISTED_PROBLEMS} are listed"
    return count, list(problems[:MAX_LISTED_PROBLEMS])


def error_response(status: int, code: str, message: str, request_id: str | None = None, **details: Any) -> Response:
    return json_response(error_body(code, message, request_id, **details), status)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return json_response(exc.body(), exc.status, exc.headers)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in our error shape.

    A 405's `Allow` lists every method the path takes (RFC 9110): Starlette
    names only those of the first route that matched the path, and a path
    served by several routes (one per method) would be misdescribed.
    """
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = exc.headers
    if exc.status_code == 405:
        scope = {"type": "http", "method": "", "path": request.url.path, "root_path": ""}
        headers = {**(headers or {}), "Allow": ", ".join(sorted(allowed_methods(request.app.routes, scope)))}
    return json_response(error_body(code, str(exc.detail)), exc.status_code, headers)


def allowed_methods(routes: list[BaseRoute], scope: dict[str, Any]) -> set[str]:
    """The methods of every route (inside mounts too) whose path matches `scope`'s."""
    found: set[str] = set()
    for route in routes:
        match, child_scope = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            found |= allowed_methods(route.routes, {**scope, **child_scope})
        elif isinstance(route, Route) and route.methods:
            found |= route.methods
    return found


async def handle_client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection while its body was read: nobody to answer, nothing to report."""
    return Response(status_code=499)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "the server failed to handle this request")
