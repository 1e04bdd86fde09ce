"""Query parameters of the management endpoints (request log, cards, analytics).

Each is checked with a 400 `invalid_parameter` naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request

from ingress.errors import ApiError

EVENT_SOURCES = ("live", "test")


def choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    """An optional parameter that must be one of `allowed`."""
    value = request.query_params.get(name) or None
    if value is not None and value not in allowed:
        raise ApiError(400, "invalid_parameter", f"{name} must be one of {', '.join(allowed)}")
    return value


def timestamp(request: Request, name: str) -> datetime | None:
    """An optional ISO-8601 time; one without a zone is taken as UTC."""
    value = request.query_params.get(name) or None
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO-8601 time like 2024-03-01T12:00:00Z") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def until(request: Request) -> datetime | None:
    """`until`, inclusive of the whole millisecond it names: times are shown to the millisecond,
    so `until=<a receivedAt>` must include that entry, stored to the microsecond."""
    moment = timestamp(request, "until")
    if moment is None or moment.microsecond % 1000:
        return moment
    return moment + timedelta(microseconds=999)
