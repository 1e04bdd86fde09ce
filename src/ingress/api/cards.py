"""Cards in front of users, and what users do with them.

`POST /cards/{id}/actions` is what an app calls when the user completes or
dismisses a card: the status change, the analytics event and the release of
any flow waiting on the card commit together.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, json_object, not_found, query_int, read_found, refuse_unknown, services
from ingress.api.cursors import Binding
from ingress.api.flow_views import card_view
from ingress.api.queries import EVENT_SOURCES, choice
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from store import cards
from store.clock import utcnow


@admin_only
async def list_user_cards(request: Request) -> Response:
    env = await environment(request)
    now = utcnow()
    user_id = request.path_params["userId"]
    event_source = choice(request, "eventSource", EVENT_SOURCES)
    status = choice(request, "status", cards.STATUSES)
    cursors = Binding("user-cards", "user, eventSource or status", (env, user_id, event_source, status))
    limit, before = query_int(request, "limit", 50, 1, 200), cursors.requested(request)
    found, next_seq = await services(request).store.read(
        lambda conn: cards.list_user_cards(
            conn, env, user_id, now=now, event_source=event_source, status=status, limit=limit, before=before
        )
    )
    return cursors.page([card_view(card, now) for card in found], next_seq)


@admin_only
async def get_card(request: Request) -> Response:
    env = await environment(request)
    card_id = request.path_params["cardInstanceId"]
    card = await read_found(request, "card", card_id, lambda conn: cards.get_card(conn, env, card_id))
    return json_response(card_view(card, utcnow()))


@admin_only
async def card_action(request: Request) -> Response:
    env = await environment(request)
    card_id = request.path_params["cardInstanceId"]
    data = await json_object(request)
    refuse_unknown(data, {"action"})
    action = data.get("action")
    if not isinstance(action, str) or action not in cards.ACTIONS:
        raise ApiError(422, "invalid_field", f"action must be one of {', '.join(cards.ACTIONS)}", path="$.action")
    now = utcnow()
    result = await services(request).store.write(lambda conn: cards.act_on_card(conn, env, card_id, action, now))
    if result.verdict == "not_found":
        raise not_found("card", card_id)
    if result.verdict == "not_active":
        raise ApiError(409, "card_not_active", f"the card is {result.status}; only an active card can be acted on")
    services(request).invocations_arrived()  # a wait on this card may have been released
    services(request).events_arrived()  # its card-completed or card-dismissed event may fire event triggers
    assert result.card is not None
    return json_response(card_view(result.card, now))


routes = [
    Route("/users/{userId:path}/cards", list_user_cards, methods=["GET"]),
    Route("/cards/{cardInstanceId}", get_card, methods=["GET"]),
    Route("/cards/{cardInstanceId}/actions", card_action, methods=["POST"]),
]
