"""`POST /v1/{env}/events`: custom events, which start flows through event triggers (SPEC §6, docs/events.md).

Authenticated as the Action Flow API is: an OAuth2 access token with the
`events` role, of the path's environment. The body is one event, or
`{"events": [...]}` with 1 to 100 of them (`schemas/events.schema.json`).
A request is judged whole, like a start request: every problem is listed
with its path and one bad event stores none. Names that flows and segments
emit are reserved (422 `reserved_event_name`): an event sent under one
would pass for theirs and fire their triggers.

Every event is stored as a live analytics event together with a pending
delivery for each event trigger it fires, in one transaction; the 202
comes after it commits, and the event dispatcher runs the deliveries.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.access_tokens import require_token
from ingress.api.common import json_object, refuse_unreadable_parameters, services
from ingress.errors import ApiError, listed_problems
from ingress.jsonio import json_response
from mapper.validation import schema_errors
from store.clock import utcnow
from store.events import (
    RESERVED_EVENT_NAMES,
    ClientIdConflict,
    CustomEvent,
    EventsRequest,
    Recorded,
    record_requests,
)

SCHEMA = "events"
MAX_TIMESTAMP_CHARS = 64  # as the schema's maxLength: longer text is not parsed at all
Problem = dict[str, str]


async def send_events(request: Request) -> Response:
    return await _send(request, "live")


async def send_test_events(request: Request) -> Response:
    """Test events: stored as `eventSource: "test"`, they start only test runs (test users, drafts) and count
    for no segment."""
    return await _send(request, "test")


async def _send(request: Request, source: str) -> Response:
    await require_token(request, "events")
    refuse_unreadable_parameters(request)
    env = request.path_params["env"]
    body = await json_object(request)
    batch, now = "events" in body, utcnow()
    events = [replace(event, event_source=source) for event in _events(env, body, batch, now)]
    recorded = await services(request).store.submit(record_requests, EventsRequest(events, now))
    if isinstance(recorded, ClientIdConflict):
        raise _conflict([_where(batch, index) for index in recorded.indexes])
    replayed = all(record.duplicate for record in recorded)
    if not replayed:  # new events: their deliveries, or those of a segment one entered or exited
        services(request).events_arrived()
    answer = {"events": [_answer(record) for record in recorded]}
    return json_response(answer, 202, {"Idempotent-Replayed": "true"} if replayed else None)


def _where(batch: bool, index: int) -> str:
    return f"$.events[{index}]" if batch else "$"


def _events(env: str, body: dict[str, Any], batch: bool, now: datetime) -> list[CustomEvent]:
    """Every event of the body, or one 422 listing every problem in it (in event order)."""
    items = body["events"] if batch else [body]
    problems = schema_errors(SCHEMA, body)
    events: list[CustomEvent] = []
    first_use: dict[str, int] = {}
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        where = _where(batch, index)
        problems += _name_problems(item.get("eventName"), where)
        timestamp = _timestamp(item.get("timestamp"), f"{where}.timestamp", problems)
        client_id = item.get("id")
        if isinstance(client_id, str):
            if client_id in first_use:
                message = f"the same id as {_where(batch, first_use[client_id])} of this request"
                problems.append({"path": f"{where}.id", "message": message})
            first_use.setdefault(client_id, index)
        events.append(
            CustomEvent(
                environment_id=env,
                name=item.get("eventName", ""),
                end_user_id=item.get("endUserId", ""),
                properties=item.get("properties", {}),
                metadata=item.get("metadata", {}),
                timestamp=timestamp or now,
                client_id=client_id if isinstance(client_id, str) else None,
            )
        )
    if problems:
        raise _invalid(sorted(problems, key=lambda problem: _index(problem["path"])))
    return events


def _name_problems(name: Any, where: str) -> list[Problem]:
    if not isinstance(name, str) or name not in RESERVED_EVENT_NAMES:
        return []
    message = f"{name!r} is reserved: flows and segments emit it (send your own name, e.g. 'checkout-completed')"
    return [{"path": f"{where}.eventName", "message": message, "code": "reserved_event_name"}]


def _timestamp(value: Any, path: str, problems: list[Problem]) -> datetime | None:
    """`value` as a UTC time; None when absent or refused (then with a problem, unless the schema has one)."""
    if not isinstance(value, str) or len(value) > MAX_TIMESTAMP_CHARS:
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is not None:
            return moment.astimezone(UTC)
        message = "must name its zone (Z or an offset like +02:00): a time without one means no instant"
    except (ValueError, OverflowError):
        message = "must be an ISO-8601 time with a zone, like 2024-03-01T12:00:00Z"
    problems.append({"path": path, "message": message})
    return None


def _index(path: str) -> int:
    """The event a problem is in (`$.events[3].eventName` -> 3); -1 for one about the body itself."""
    prefix = "$.events["
    index, _, _ = path.removeprefix(prefix).partition("]")
    return int(index) if path.startswith(prefix) and index.isdigit() else -1


def _invalid(problems: list[Problem]) -> ApiError:
    """422 `reserved_event_name` when that is all that is wrong, `validation_error` otherwise; each problem
    with its path, the first one's as `path`."""
    codes = [problem.pop("code", None) for problem in problems]
    reserved = all(code == "reserved_event_name" for code in codes)
    count, listed = listed_problems(problems)
    message = f"the request is not valid ({count}); no event was stored"
    return ApiError(
        422, "reserved_event_name" if reserved else "validation_error", message, path=problems[0]["path"], errors=listed
    )


def _conflict(paths: list[str]) -> ApiError:
    message = "an id was already used with another event; no event was stored"
    errors = [
        {"path": f"{path}.id", "message": "already used with another eventName, endUserId, properties or metadata"}
        for path in paths
    ]
    return ApiError(409, "idempotency_conflict", message, path=errors[0]["path"], errors=errors)


def _answer(record: Recorded) -> dict[str, Any]:
    return {"id": record.id, "deliveries": record.deliveries, "duplicate": record.duplicate}


routes = [Route("/events", send_events, methods=["POST"]), Route("/events/test", send_test_events, methods=["POST"])]
