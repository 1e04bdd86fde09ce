"""Error answers: `{"error": {"code", "message", "requestId"?, …}}`, nothing more.

Messages are written by us, never copied from a secret or a mapping's source;
an unexpected exception is logged with its traceback and answered with a
bare 500. A store that cannot be reached (connection refused or lost, a
missing database, a locked or failing disk, a write-ahead log that could not
be flushed: `flows.background.transient_failure` decides, for the background
loops too) is no bug: every route answers it
503 `store_unavailable` with `Retry-After`, and the log gets a line a minute
at most, without a traceback, however many requests meet it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route

from flows.background import STILL_FAILING_LOG_SECONDS, failure_reason, transient_failure
from ingress.jsonio import json_response
from store.writer import NotDurable, WriterClosed

log = logging.getLogger("flowhook.ingress")

#: How many `{path, message}` problems a 422 lists; its message counts them all.
MAX_LISTED_PROBLEMS = 100

#: What the store raises; `store_unavailable` tells which of them mean "not now" rather than a bug.
STORE_ERRORS = (SQLAlchemyError, WriterClosed, NotDurable)
#: A 503's `Retry-After`: the store's outages that end by themselves (a restart, a failover) take seconds.
RETRY_LATER = {"Retry-After": "5"}
STORE_UNAVAILABLE = "the store is unavailable; retry later"


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


def store_unavailable(error: BaseException) -> bool:
    """Whether `error` is the store failing to answer now (a 503: retry), not a bug (a 500)."""
    return isinstance(error, STORE_ERRORS) and transient_failure(error)


class UnavailableLog:
    """The requests that met a store unavailable: a warning at most every STILL_FAILING_LOG_SECONDS,
    counting those in between, so that an outage under load does not flood the log."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logged: float | None = None
        self._unlogged = 0

    def note(self, error: Exception, where: str) -> None:
        now = self._clock()
        if self._logged is not None and now - self._logged < STILL_FAILING_LOG_SECONDS:
            self._unlogged += 1
            return
        since = f"; {self._unlogged} more requests met it since the last such line" if self._unlogged else ""
        log.warning("store unavailable (%s), met by %s%s", failure_reason(error), where, since)
        self._logged, self._unlogged = now, 0


unavailable_log = UnavailableLog()


def noted_unavailable(error: Exception, where: str) -> bool:
    """Whether `error` is the store failing to answer now; if it is, `unavailable_log` notes it, met by `where`."""
    if not store_unavailable(error):
        return False
    unavailable_log.note(error, where)
    return True


async def handle_store_error(request: Request, exc: Exception) -> Response:
    """A store error raised by any route: 503 `store_unavailable` if the store cannot be reached, else a bug."""
    route = request.scope.get("route")  # its template: a path may hold a key (`/marketo/{key}/status`)
    if not noted_unavailable(exc, f"{request.method} {getattr(route, 'path', '')}"):
        return await handle_unexpected(request, exc)
    return json_response(error_body("store_unavailable", STORE_UNAVAILABLE), 503, RETRY_LATER)
