"""Query parameters of the management endpoints (request log, cards, analytics).

Each is checked with a 400 `invalid_parameter` naming it; given empty too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request

from ingress.errors import ApiError

EVENT_SOURCES = ("live", "test")


def given(request: Request, name: str) -> str | None:
    """An optional parameter's value, None when it is absent. An empty value (`?limit=`) is a 400 rather than
    the default: whatever sent it meant something, and Stripe refuses it too."""
    value = request.query_params.get(name)
    if value == "":
        raise ApiError(400, "invalid_parameter", f"{name} must not be empty (leave it out for the default)")
    return value


def choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    """An optional parameter that must be one of `allowed`."""
    value = given(request, name)
    if value is not None and value not in allowed:
        raise ApiError(400, "invalid_parameter", f"{name} must be one of {', '.join(allowed)}")
    return value


def timestamp(request: Request, name: str) -> datetime | None:
    """An optional ISO-8601 time; one without a zone is taken as UTC."""
    value = given(request, name)
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
