"""Rolling a Marketo trigger's API key: `POST /v1/{env}/triggers/{triggerId}/api-key/roll` (admin token).

A leaked key is replaced at once; a routine rotation keeps the old key
working for an overlap (`previousKeyExpiresInSeconds`, up to seven days)
while the new one is pasted into Marketo (ingress.marketo_keys). The answer
is the trigger with the new key in full, the only time it is shown, as at
its creation; the service URLs stay the same, so Marketo needs no
reinstalling. docs/marketo.md, "Rotate the API key".
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import (
    environment,
    int_field,
    not_found,
    parsed_object,
    refuse_unknown,
    request_body,
    services,
)
from ingress.api.preconditions import etag
from ingress.api.triggers import base_url
from ingress.api.views import trigger_view
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.marketo_keys import MAX_OVERLAP, rolled
from store import triggers
from store.clock import utcnow

OVERLAP_FIELD = "previousKeyExpiresInSeconds"


@admin_only
async def roll_api_key(request: Request) -> Response:
    env = await environment(request)
    trigger_id = request.path_params["trigger_id"]
    overlap = timedelta(seconds=await _overlap_seconds(request))

    def roll(conn: Connection) -> triggers.Trigger:
        while True:  # until no other process changed the trigger between the read and the write
            current = triggers.get_trigger(conn, env, trigger_id)
            if current is None:
                raise not_found("trigger", trigger_id)
            if not isinstance(current, triggers.Trigger) or current.type != "marketo":
                raise ApiError(409, "not_a_marketo_trigger", f"{trigger_id} has no API key: only Marketo triggers do")
            keys = rolled(current.verification, overlap, utcnow())
            try:
                updated = triggers.update_trigger(
                    conn, env, trigger_id, {"verification": keys}, if_revision_in={current.revision}
                )
            except triggers.RevisionMismatch:
                continue
            if updated is None:  # deleted meanwhile
                raise not_found("trigger", trigger_id)
            return updated

    updated = await services(request).store.write(roll)
    services(request).configuration_changed()
    view = trigger_view(updated, base_url(request))
    view["apiKey"] = (updated.verification or {})["secret"]
    return json_response(view, headers=etag(updated.revision))


async def _overlap_seconds(request: Request) -> int:
    """The body's overlap (none when the body is empty or leaves it out)."""
    raw = await request_body(request)
    if not raw.strip():
        return 0
    data = parsed_object(raw)
    refuse_unknown(data, {OVERLAP_FIELD})
    limit = int(MAX_OVERLAP.total_seconds())
    return int_field(data, OVERLAP_FIELD, 0, limit, f"an integer from 0 to {limit} (seven days)", 0)


routes = [Route("/triggers/{trigger_id}/api-key/roll", roll_api_key, methods=["POST"])]
