"""The request log: list (filters, cursor pages), read one, replay one or a page of them."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, not_found, query_int, read_found, services
from ingress.api.cursors import Binding
from ingress.api.queries import choice, given, timestamp, until
from ingress.api.triggers import webhook_trigger
from ingress.api.views import request_summary, request_view
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.hook_configs import HookConfig
from ingress.hooks import CAUSES, HookPipeline, Outcome
from ingress.jsonio import json_response
from store import request_log, triggers
from store.request_log import REFUSED, LogEntry, LogFilter, StatusFilter
from store.triggers import ApiTrigger, Trigger

MAX_PAGE = 200
MAX_REPLAYS = 100  # a page of a bulk replay: each waits for its durable accept, so the call stays short
#: Stripe's rule for an `Idempotency-Key`: up to 255 characters; here printable ASCII, so every client sends it alike.
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")
#: The namespace of the flowInvocationIds derived from a replay's `Idempotency-Key` (a fixed, random UUID).
_REPLAY_KEYS = uuid.UUID("12cc0939-e605-4396-9b78-8a6b00a9b3d9")
#: The causes of requests the hook did not refuse: a bulk replay never takes them.
_NOT_REFUSED = ("accepted", "duplicate", "captured", "skipped")


def _status(request: Request) -> StatusFilter | None:
    value = given(request, "status")
    try:
        return None if value is None else StatusFilter.parse(value)
    except ValueError as error:
        raise ApiError(400, "invalid_parameter", str(error)) from None


def _filtered(request: Request, listing: str, env: str, trigger_id: str | None) -> tuple[LogFilter, Binding]:
    """The query's filters, and the cursors of `listing` bound to them and the trigger (not to the route:
    `/triggers/{id}/requests` and `/requests?triggerId={id}` are one listing)."""
    cause, since = choice(request, "cause", CAUSES), timestamp(request, "since")
    where = LogFilter(trigger_id=trigger_id, status=_status(request), cause=cause, since=since, until=until(request))
    status_range = None if where.status is None else f"{where.status.low}-{where.status.high}"
    parts = (env, trigger_id, status_range, where.cause, where.since, where.until)
    return where, Binding(listing, "trigger, status, cause, since or until", parts)


async def _page(request: Request, env: str, trigger_id: str | None) -> Response:
    """A page of the log, newest first."""
    where, cursors = _filtered(request, "request-log", env, trigger_id)
    limit, before = query_int(request, "limit", 50, 1, MAX_PAGE), cursors.requested(request)

    def page(conn: Connection) -> tuple[list[LogEntry], int | None] | None:
        if trigger_id is not None and triggers.get_trigger(conn, env, trigger_id) is None:
            return None
        return request_log.list_entries(conn, env, where, limit=limit, before=before)

    entries, next_seq = await read_found(request, "trigger", trigger_id or "", page)
    return cursors.page([request_summary(entry) for entry in entries], next_seq)


@admin_only
async def list_trigger_requests(request: Request) -> Response:
    env = await environment(request)
    return await _page(request, env, request.path_params["trigger_id"])


@admin_only
async def list_requests(request: Request) -> Response:
    env = await environment(request)
    return await _page(request, env, given(request, "triggerId"))


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


def _unreplayable(entry: LogEntry) -> str | None:
    """Why `entry` cannot be replayed, if it cannot: it never passed the IP and signature checks (a replay
    must not launder a forged request), or the log truncated its body."""
    if not entry.verified:
        return "only requests that passed the trigger's IP and signature checks can be replayed"
    if entry.body_truncated:
        return "the log kept only part of this request's body"
    return None


async def _hook_config(request: Request, trigger_id: str, trigger: Trigger | ApiTrigger | None) -> HookConfig:
    """The current configuration of `trigger` (as just read), which replays run under; a 404 if it is gone."""
    hook_id = None if trigger is None else trigger.hook_id
    config = None if hook_id is None else await services(request).hook_configs.get(hook_id)
    if config is None:
        raise not_found("trigger", trigger_id)
    return config


async def _replayed(
    request: Request, original: LogEntry, config: HookConfig, key: str | None
) -> tuple[LogEntry, Outcome]:
    """`original` run again; with an `Idempotency-Key`, replaying it again under the same key starts nothing
    new (see `_replay_invocation_id`)."""
    pipeline: HookPipeline = request.app.state.pipeline
    flow_invocation_id = None if key is None else _replay_invocation_id(original.id, key)
    return await pipeline.replay(original, config, flow_invocation_id=flow_invocation_id)


@admin_only
async def replay_request(request: Request) -> Response:
    """Run a logged request again through the trigger's current mode, mapping and flow."""
    env = await environment(request)
    key = _idempotency_key(request)
    original = await _entry(request, env)
    refusal = _unreplayable(original)
    if refusal is not None:
        raise ApiError(409, "replay_not_allowed", refusal)
    trigger_id = original.trigger_id or ""
    trigger = await services(request).store.read(lambda conn: triggers.get_trigger(conn, env, trigger_id))
    config = await _hook_config(request, trigger_id, trigger)
    log, outcome = await _replayed(request, original, config, key)
    return json_response(
        {
            "requestId": log.id,
            "replayOf": original.id,
            "status": outcome.status,
            "cause": outcome.cause,
            "response": outcome.body,
        }
    )


async def _bulk_replay_filter(request: Request, env: str, trigger_id: str) -> tuple[LogFilter, Binding]:
    """The listing's filters, held to requests the hook refused; a body or a filter that can only select
    requests it did not refuse is a 400 rather than a replay of something else (as an unknown parameter
    is, a misspelt filter that would widen it: ingress.api.known_parameters)."""
    if await request.body():
        message = "a bulk replay takes no body: its filters go in the query string, as the listing's do"
        raise ApiError(400, "invalid_body", message)
    where, cursors = _filtered(request, "request-replay", env, trigger_id)
    if where.status is not None and where.status.high < REFUSED.low:
        message = "a bulk replay takes refused requests only (4xx, 5xx); replay another one alone"
        raise ApiError(400, "invalid_parameter", f"status: {message}")
    if where.cause in _NOT_REFUSED:
        message = "a bulk replay takes refused requests only; replay an accepted, captured or skipped one alone"
        raise ApiError(400, "invalid_parameter", f"cause: {message}")
    return where, cursors


@admin_only
async def replay_requests(request: Request) -> Response:
    """Replay a page of the requests a webhook trigger refused, those the listing's filters select, in the
    order they arrived (replays, and requests a replay recovered, left out), one after the other: recovery
    after a broken mapping or a flow published late, as Svix's recover and Hookdeck's bulk retry do. Each
    item says what became of one request; `nextCursor` continues with the next page."""
    env = await environment(request)
    key = _idempotency_key(request)
    trigger = await webhook_trigger(request, env, "request log to replay")
    where, cursors = await _bulk_replay_filter(request, env, trigger.id)
    limit, after = query_int(request, "limit", 50, 1, MAX_REPLAYS), cursors.requested(request)
    entries, next_seq = await services(request).store.read(
        lambda conn: request_log.refused_in_order(conn, env, where, limit=limit, after=after)
    )
    config = await _hook_config(request, trigger.id, trigger)
    results: list[dict[str, Any]] = []
    for original in entries:
        refusal = _unreplayable(original)
        if refusal is not None:
            results.append({"replayOf": original.id, "skipped": "replay_not_allowed", "message": refusal})
            continue
        log, outcome = await _replayed(request, original, config, key)
        results.append({"requestId": log.id, "replayOf": original.id, "status": outcome.status, "cause": outcome.cause})
    return cursors.page(results, next_seq)


routes = [
    Route("/triggers/{trigger_id}/requests", list_trigger_requests, methods=["GET"]),
    Route("/requests", list_requests, methods=["GET"]),
    Route("/requests/{request_id}", get_request, methods=["GET"]),
    Route("/requests/{request_id}/replay", replay_request, methods=["POST"]),
    Route("/triggers/{trigger_id}/requests/replay", replay_requests, methods=["POST"]),
]
