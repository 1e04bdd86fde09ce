"""The request log: list (filters, cursor pages), read one, replay one."""

from __future__ import annotations

import re
import uuid

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, not_found, query_int, read_found, services
from ingress.api.cursors import Binding
from ingress.api.queries import choice, timestamp, until
from ingress.api.views import request_summary, request_view
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.hooks import CAUSES, HookPipeline
from ingress.jsonio import json_response
from store import request_log, triggers
from store.request_log import LogEntry, StatusFilter

MAX_PAGE = 200
#: Stripe's rule for an `Idempotency-Key`: up to 255 characters; here printable ASCII, so every client sends it alike.
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")
#: The namespace of the flowInvocationIds derived from a replay's `Idempotency-Key` (a fixed, random UUID).
_REPLAY_KEYS = uuid.UUID("12cc0939-e605-4396-9b78-8a6b00a9b3d9")


def _status(request: Request) -> StatusFilter | None:
    value = request.query_params.get("status") or None
    try:
        return None if value is None else StatusFilter.parse(value)
    except ValueError as error:
        raise ApiError(400, "invalid_parameter", str(error)) from None


async def _page(request: Request, env: str, trigger_id: str | None) -> Response:
    """A page of the log. Its cursor is bound to the trigger and every filter, not to the route:
    `/triggers/{id}/requests` and `/requests?triggerId={id}` are one listing."""
    status, cause = _status(request), choice(request, "cause", CAUSES)
    since, until_ = timestamp(request, "since"), until(request)
    status_range = None if status is None else f"{status.low}-{status.high}"
    cursors = Binding(
        "request-log", "trigger, status, cause, since or until", (env, trigger_id, status_range, cause, since, until_)
    )
    limit, before = query_int(request, "limit", 50, 1, MAX_PAGE), cursors.requested(request)

    def page(conn: Connection) -> tuple[list[LogEntry], int | None] | None:
        if trigger_id is not None and triggers.get_trigger(conn, env, trigger_id) is None:
            return None
        return request_log.list_entries(
            conn, env, trigger_id=trigger_id, status=status, cause=cause, since=since, until=until_, limit=limit,
            before=before,
        )  # fmt: skip

    entries, next_seq = await read_found(request, "trigger", trigger_id or "", page)
    return cursors.page([request_summary(entry) for entry in entries], next_seq)


@admin_only
async def list_trigger_requests(request: Request) -> Response:
    env = await environment(request)
    return await _page(request, env, request.path_params["trigger_id"])


@admin_only
async def list_requests(request: Request) -> Response:
    env = await environment(request)
    return await _page(request, env, request.query_params.get("triggerId") or None)


async def _entry(request: Request, env: str) -> LogEntry:
    request_id = request.path_params["request_id"]
    return await read_found(request, "request", request_id, lambda conn: request_log.get_entry(conn, env, request_id))


@admin_only
async def get_request(request: Request) -> Response:
    env = await environment(request)
    return json_response(request_view(await _entry(request, env)))


def _idempotency_key(request: Request) -> str | None:
    """The replay's `Idempotency-Key` header, if sent; a 400 if it is empty, too long, not printable or repeated."""
    keys = request.headers.getlist("idempotency-key")
    if not keys:
        return None
    if len(keys) > 1:
        raise ApiError(400, "invalid_idempotency_key", "send one Idempotency-Key header, not several")
    if not _IDEMPOTENCY_KEY.fullmatch(keys[0]):
        message = "the Idempotency-Key header must be 1 to 255 printable ASCII characters"
        raise ApiError(400, "invalid_idempotency_key", message)
    return keys[0]


def _replay_invocation_id(request_id: str, key: str) -> str:
    """The flowInvocationId of a replay of `request_id` under Idempotency-Key `key`, for when the mapping gives none.

    The same request and key always give the same id (a name-based UUID), so a retried replay is a repeat
    that the invocations' own idempotency answers as before, and nothing needs to remember the key.
    """
    return str(uuid.uuid5(_REPLAY_KEYS, f"{request_id}:{key}"))


@admin_only
async def replay_request(request: Request) -> Response:
    """Run a logged request again through the trigger's current mode, mapping and flow.

    Refused for requests that never passed the IP and signature checks
    (replay must not launder a forged request) and for bodies the log
    truncated. With an `Idempotency-Key`, replaying the same request again
    under the same key starts nothing new (see `_replay_invocation_id`).
    """
    env = await environment(request)
    key = _idempotency_key(request)
    original = await _entry(request, env)
    if not original.verified:
        message = "only requests that passed the trigger's IP and signature checks can be replayed"
        raise ApiError(409, "replay_not_allowed", message)
    if original.body_truncated:
        raise ApiError(409, "replay_not_allowed", "the log kept only part of this request's body")
    trigger_id = original.trigger_id or ""
    trigger = await services(request).store.read(lambda conn: triggers.get_trigger(conn, env, trigger_id))
    if trigger is None or trigger.hook_id is None:
        raise not_found("trigger", original.trigger_id or "")
    config = await services(request).hook_configs.get(trigger.hook_id)
    if config is None:
        raise not_found("trigger", trigger.id)
    pipeline: HookPipeline = request.app.state.pipeline
    flow_invocation_id = None if key is None else _replay_invocation_id(original.id, key)
    log, outcome = await pipeline.replay(original, config, flow_invocation_id=flow_invocation_id)
    return json_response(
        {
            "requestId": log.id,
            "replayOf": original.id,
            "status": outcome.status,
            "cause": outcome.cause,
            "response": outcome.body,
        }
    )


routes = [
    Route("/triggers/{trigger_id}/requests", list_trigger_requests, methods=["GET"]),
    Route("/requests", list_requests, methods=["GET"]),
    Route("/requests/{request_id}", get_request, methods=["GET"]),
    Route("/requests/{request_id}/replay", replay_request, methods=["POST"]),
]
