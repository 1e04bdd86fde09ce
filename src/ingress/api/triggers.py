"""Triggers: every flow's API trigger, webhook, event and segment triggers: create, read, change, delete.

Everything is checked before it is saved and a config that cannot work is
refused (fail closed): the mapping must compile (422 with its location), the
verification config must be usable (422 with its path), every allowlist entry
must parse. A setting of the other kind (`verification` on an event trigger,
`eventName` on a webhook trigger) is a 422 rather than ignored.

An event trigger (docs/events.md) listens for one event name: it has no hook,
so capture and samples are refused as for the API trigger, and its request
log is empty; what its events did is its delivery log. A segment trigger
(docs/customers.md) is one on a segment's `segment-entered` or
`segment-exited` events: `segmentId` (an existing segment, else 422) and `on`.
An SFMC trigger (docs/sfmc.md) is a Journey Builder custom activity: its
`signingSecret` (the installed package's JWT signing secret, at least
MIN_SIGNING_SECRET characters) is kept as its `verification` `{"secret"}`.
A marketo trigger (docs/marketo.md) is a Marketo flow step service: its API
key is made here, kept as its `verification` `{"secret"}` and shown once.

The API trigger comes and goes with its flow (SPEC §5: it cannot be removed):
it is listed first among its flow's triggers and read like any trigger, and
creating, changing or deleting it, or anything that needs a hook, is a 409
that says so. The environment's listing (`GET /v1/{env}/triggers`, a page at
a time, newest first) shows the API triggers among the others too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.allowlist import IpAllowlist
from ingress.api.common import (
    delete_found,
    environment,
    field,
    json_object,
    not_found,
    query_int,
    read_found,
    refuse_unknown,
    services,
)
from ingress.api.cursors import Binding
from ingress.api.preconditions import etag, if_match, precondition_failed
from ingress.api.queries import choice, given
from ingress.api.views import trigger_view
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.marketo_keys import new_key
from ingress.verification import SECRET_MASK, VerificationConfigError, compile_verification
from mapper import MappingSpecError
from store import flows, segments, triggers
from store.events import EVENT_NAME_RULE, valid_event_name
from store.triggers import MODES, ApiTrigger, Trigger, api_trigger_id


@dataclasses.dataclass(frozen=True)
class Kind:
    """What sets one kind of stored trigger apart from the others."""

    #: The mapping a trigger of this kind gets when it is created without one.
    default_mapping: dict[str, Any]
    #: The settings only this kind has (any other kind refuses them).
    fields: frozenset[str] = frozenset()
    #: The setting a trigger of this kind cannot be created without, and what it is.
    required: tuple[str, str] | None = None
    #: The settings filled in at creation when absent, beside the mapping.
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: How what starts it reaches it, for a kind without a webhook URL.
    reached_by: str | None = None
    #: As the kind's name is said: "an sfmc trigger", "an event trigger".
    article: str = "a"


KINDS = {
    "webhook": Kind({"kind": "passthrough"}, frozenset({"verification", "allowedIps"})),
    "event": Kind(
        # The seed's default: the event's user is the target, its properties the variables (the mapper's
        # `request.body` for an event is the event itself).
        {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId", "variables": "body.properties"}},
        frozenset({"eventName"}),
        required=("eventName", "the event it listens for"),
        reached_by="events reach it through POST /v1/{env}/events",
        article="an",
    ),
    "segment": Kind(
        # The customer who entered or exited (the event's properties name the segment only).
        {"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId"}},
        frozenset({"segmentId", "on"}),
        required=("segmentId", "the segment"),
        defaults={"on": "entered"},
        reached_by="its segment's entries or exits reach it",
    ),
    "sfmc": Kind(
        # The activity's inArguments, merged into `body.arguments` (ingress.sfmc), name the user (`userId`,
        # `{{Contact.Key}}` by default) and are the variables.
        {"kind": "jmespath", "fields": {"targetUserIds": "body.arguments.userId", "variables": "body.arguments"}},
        frozenset({"signingSecret"}),
        required=("signingSecret", "the installed package's JWT signing secret"),
        reached_by="Journey Builder calls its activity URLs, under configUrl",
        article="an",
    ),
    "marketo": Kind(
        {"kind": "jmespath", "fields": {"targetUserIds": "body.userId"}},  # the lead's userIdField
        reached_by="Marketo calls its flow step service, under serviceUrl",
    ),
}
#: The settings every kind of trigger has (besides its kind's `fields`).
COMMON_FIELDS = frozenset({"mode", "mapping"})
#: Shorter signing secrets are refused: SFMC's are far longer, and a short one is a typo or a guessable key.
MIN_SIGNING_SECRET = 16
#: The most triggers a page of the environment's listing holds.
MAX_PAGE = 200
#: A segment trigger's `on`, as the event it listens for.
SEGMENT_EVENTS = {"entered": segments.ENTERED, "exited": segments.EXITED}


def base_url(request: Request) -> str:
    """Where hook URLs point: the configured public URL, else the URL this API was called on."""
    configured = services(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


async def checked_changes(request: Request, data: dict[str, Any], variables: list[dict[str, Any]]) -> dict[str, Any]:
    """The trigger columns `data` sets, each validated."""
    changes: dict[str, Any] = {}
    if "mode" in data:
        changes["mode"] = field(data, "mode", lambda v: v in MODES, " | ".join(MODES), None)
    if "mapping" in data:
        changes["mapping"] = await checked_mapping(request, data["mapping"], variables)
    if "verification" in data:
        changes["verification"] = _checked_verification(data["verification"])
    if "allowedIps" in data:
        changes["allowed_ips"] = _checked_allowlist(data["allowedIps"])
    if "eventName" in data:
        changes["event_name"] = field(data, "eventName", valid_event_name, EVENT_NAME_RULE, None)
    if "on" in data:
        changes["event_name"] = SEGMENT_EVENTS[
            field(data, "on", lambda v: v in SEGMENT_EVENTS, "entered | exited", None)
        ]
    if "segmentId" in data:
        changes["segment_id"] = field(data, "segmentId", lambda v: isinstance(v, str), "a segment id", None)
    if "signingSecret" in data:
        changes["verification"] = {"secret": _checked_signing_secret(data["signingSecret"])}
    return changes


def _checked_signing_secret(secret: Any) -> str:
    """A usable JWT signing secret; never one sent back masked from a GET (the error does not quote it)."""
    if not isinstance(secret, str) or len(secret) < MIN_SIGNING_SECRET or secret.startswith(SECRET_MASK):
        message = (
            f"signingSecret must be the installed package's JWT signing secret (at least {MIN_SIGNING_SECRET} "
            "characters; a masked value shown by a GET is not the secret)"
        )
        raise ApiError(422, "invalid_signing_secret", message, path="$.signingSecret")
    if secret != secret.strip():  # as a webhook secret: a copy-paste slip that would fail every signature
        message = "signingSecret has leading or trailing whitespace"
        raise ApiError(422, "invalid_signing_secret", message, path="$.signingSecret")
    return secret


def _refuse_unaccepted(data: dict[str, Any], kind: str, *also: str) -> None:
    """A 422 for a field `kind` does not take: `invalid_field` for a setting of another kind, saying whose,
    else `unknown_field` listing what this kind takes (`also`, and its settings), not what others do."""
    _refuse_other_kinds_fields(data, kind)
    refuse_unknown(data, {*also, *COMMON_FIELDS, *KINDS[kind].fields})


def _refuse_other_kinds_fields(data: dict[str, Any], kind: str) -> None:
    """A 422 for a setting that only the other kind of trigger has: it would be silently meaningless."""
    for other, spec in KINDS.items():
        given = sorted(spec.fields & set(data)) if other != kind else []
        if given:
            message = f"{given[0]} is a setting of {other} triggers; this is {_a(kind)} trigger"
            raise ApiError(422, "invalid_field", message, path=f"$.{given[0]}")


def _a(kind: str) -> str:
    return f"{KINDS[kind].article} {kind}"


async def checked_mapping(request: Request, spec: Any, variables: list[dict[str, Any]] | None) -> dict[str, Any]:
    """`spec` if it compiles; a 422 `invalid_mapping` with the problem's location otherwise."""
    if not isinstance(spec, dict):
        raise ApiError(422, "invalid_mapping", "mapping must be a mapping spec object", path="$.mapping")
    try:
        await services(request).previews.check(spec, variables)
    except MappingSpecError as error:
        raise invalid_mapping(error) from None
    return spec


def invalid_mapping(error: MappingSpecError) -> ApiError:
    """`path` is inside the mapping spec; `line`/`column` inside its JavaScript source."""
    return ApiError(422, "invalid_mapping", error.message, path=error.path, line=error.line, column=error.column)


def _checked_verification(config: Any) -> dict[str, Any] | None:
    """`config` if it compiles (a masked secret sent back from a GET does not, with the path of that secret)."""
    try:
        compile_verification(config)
    except VerificationConfigError as error:
        path = "$.verification" + error.path.removeprefix("$")
        raise ApiError(422, "invalid_verification", error.message, path=path) from None
    checked: dict[str, Any] | None = config
    return checked


def _checked_allowlist(entries: Any) -> list[str]:
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise ApiError(422, "invalid_allowed_ips", "allowedIps must be a list of strings", path="$.allowedIps")
    for index, entry in enumerate(entries):
        try:
            IpAllowlist([entry])
        except ValueError as error:
            raise ApiError(422, "invalid_allowed_ips", str(error), path=f"$.allowedIps[{index}]") from None
    return entries


async def _flow_variables(request: Request, env: str, flow_id: str) -> list[dict[str, Any]]:
    """The draft's variable declarations: a trigger's mapping is checked against them as it is saved."""
    declared = await read_found(request, "flow", flow_id, lambda conn: flows.declared_variables(conn, env, flow_id))
    return declared.draft


async def _trigger(request: Request, env: str) -> Trigger | ApiTrigger:
    trigger_id = request.path_params["trigger_id"]
    return await read_found(request, "trigger", trigger_id, lambda conn: triggers.get_trigger(conn, env, trigger_id))


def _stored_only(trigger: Trigger | ApiTrigger, code: str, why: str) -> Trigger:
    """`trigger` if it is a stored (webhook or event) trigger; for a flow's API trigger, a 409 `code` saying `why`."""
    if isinstance(trigger, ApiTrigger):
        raise ApiError(409, code, f"{trigger.id} is the API trigger of flow {trigger.flow_id}: {why}")
    return trigger


async def webhook_trigger(request: Request, env: str, needs_hook: str) -> Trigger:
    """The path's trigger (404 if none); a 409 `not_a_webhook_trigger` if it is an API or event trigger,
    which has no hook, hence no `needs_hook`."""
    why = f"it has no hook URL, hence no {needs_hook} (its calls are answered directly and show up as invocations)"
    trigger = _stored_only(await _trigger(request, env), "not_a_webhook_trigger", why)
    if trigger.type != "webhook":
        message = (
            f"{trigger.id} is {_a(trigger.type)} trigger: it has no hook URL, hence no {needs_hook} "
            f"({KINDS[trigger.type].reached_by}; see its deliveries)"
        )
        raise ApiError(409, "not_a_webhook_trigger", message)
    return trigger


@admin_only
async def create_trigger(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    data = await json_object(request)
    kind = data.get("type", "webhook")
    if kind not in (*KINDS, "api"):  # a tuple: `type` may be any JSON, a list or an object too
        *others, last = KINDS
        message = (
            f"type must be {', '.join(others)} or {last} (the API trigger comes with the flow; other trigger types "
            "have their own APIs)"
        )
        raise ApiError(422, "invalid_field", message, path="$.type")
    variables = await _flow_variables(request, env, flow_id)
    if kind == "api":
        message = f"flow {flow_id} already has its API trigger, {api_trigger_id(flow_id)}: every flow has exactly one"
        raise ApiError(409, "api_trigger_exists", message, path="$.type")
    spec = KINDS[kind]
    _refuse_unaccepted(data, kind, "type")
    if spec.required is not None and spec.required[0] not in data:
        name, what = spec.required
        raise ApiError(422, "invalid_field", f"{_a(kind)} trigger needs {name}, {what}", path=f"$.{name}")
    defaults = {"mapping": spec.default_mapping, **spec.defaults}
    changes = await checked_changes(request, {**defaults, **data}, variables)
    if kind == "marketo":  # its API key, made here and shown once (docs/marketo.md)
        changes["verification"] = new_key()

    def insert(conn: Connection) -> Trigger:
        _refuse_unknown_segment(conn, env, changes)
        return triggers.insert_trigger(
            conn,
            env,
            flow_id,
            kind=kind,
            mode=changes.get("mode", "test"),
            mapping=changes["mapping"],
            verification=changes.get("verification"),
            allowed_ips=changes.get("allowed_ips", []),
            event_name=changes.get("event_name"),
            segment_id=changes.get("segment_id"),
        )

    trigger = await services(request).store.write(insert)
    view = trigger_view(trigger, base_url(request))
    if kind == "marketo":
        view["apiKey"] = changes["verification"]["secret"]
    return json_response(view, 201, etag(trigger.revision))


def _refuse_unknown_segment(conn: Connection, env: str, changes: dict[str, Any]) -> None:
    """A 422 for a segment trigger naming a segment the environment does not have (checked as it is saved)."""
    segment_id = changes.get("segment_id")
    if segment_id is not None and segments.get_segment(conn, env, segment_id) is None:
        raise ApiError(422, "segment_not_found", f"no segment {segment_id!r} in this environment", path="$.segmentId")


@admin_only
async def list_flow_triggers(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    found = await read_found(request, "flow", flow_id, lambda conn: triggers.list_triggers(conn, env, flow_id))
    return json_response({"data": [trigger_view(trigger, base_url(request)) for trigger in found]})


@admin_only
async def list_environment_triggers(request: Request) -> Response:
    """Every trigger of the environment, its flows' API triggers among them, newest first, a page at a time;
    each as the flow's listing shows it (docs/webhooks.md)."""
    env = await environment(request)
    kind, mode = choice(request, "type", ("api", *KINDS)), choice(request, "mode", MODES)
    flow_id = given(request, "flowId")
    cursors = Binding("triggers", "type, mode or flowId", (env, kind, mode, flow_id))
    limit, after = query_int(request, "limit", 50, 1, MAX_PAGE), cursors.requested_key(request)

    def page(conn: Connection) -> tuple[list[Trigger | ApiTrigger], triggers.Position | None] | None:
        return triggers.list_environment_triggers(
            conn, env, kind=kind, mode=mode, flow_id=flow_id, limit=limit, after=after
        )

    found, last = await read_found(request, "flow", flow_id or "", page)
    return cursors.page([trigger_view(trigger, base_url(request)) for trigger in found], last)


def _trigger_response(trigger: Trigger | ApiTrigger, request: Request) -> Response:
    """The trigger's view; a stored one's revision as its `ETag`, for `If-Match` on a PATCH (an API trigger
    never changes)."""
    headers = etag(trigger.revision) if isinstance(trigger, Trigger) else None
    return json_response(trigger_view(trigger, base_url(request)), headers=headers)


@admin_only
async def get_trigger(request: Request) -> Response:
    env = await environment(request)
    return _trigger_response(await _trigger(request, env), request)


@admin_only
async def patch_trigger(request: Request) -> Response:
    """A change, applied only to the revision `If-Match` names when it is sent (412 otherwise): checked before
    the body is (RFC 9110 §13.2.2), and again in the write that applies it."""
    env = await environment(request)
    why = (
        "it has nothing to change (/start runs the published flow, /test the draft); mode, mapping, verification "
        "and allowedIps are settings of webhook triggers"
    )
    current = _stored_only(await _trigger(request, env), "api_trigger_not_editable", why)
    condition = if_match(request)
    if condition is not None and not condition.holds(current.revision):
        raise precondition_failed(f"trigger {current.id}", current.revision, condition)
    data = await json_object(request)
    _refuse_unaccepted(data, current.type)
    variables = await _flow_variables(request, env, current.flow_id)
    changes = await checked_changes(request, data, variables)
    revisions = condition.revisions if condition is not None else None

    def update(conn: Connection) -> Trigger | None:
        _refuse_unknown_segment(conn, env, changes)
        return triggers.update_trigger(conn, env, current.id, changes, if_revision_in=revisions)

    try:
        updated = await services(request).store.write(update)
    except triggers.RevisionMismatch as mismatch:
        assert condition is not None  # only a conditional change is refused
        raise precondition_failed(f"trigger {current.id}", mismatch.current.revision, condition) from None
    if updated is None:
        raise not_found("trigger", current.id)
    services(request).configuration_changed()
    return _trigger_response(updated, request)


@admin_only
async def delete_trigger(request: Request) -> Response:
    env = await environment(request)
    why = (
        "every flow has one and it cannot be removed (ignore it if you do not need it: it starts nothing without "
        "a credential's access token)"
    )
    trigger = _stored_only(await _trigger(request, env), "api_trigger_required", why)
    response = await delete_found(
        request, "trigger", trigger.id, lambda conn: triggers.delete_trigger(conn, env, trigger.id)
    )
    services(request).configuration_changed()
    return response


routes = [
    Route("/action-flows/{flow_id}/triggers", create_trigger, methods=["POST"]),
    Route("/action-flows/{flow_id}/triggers", list_flow_triggers, methods=["GET"]),
    Route("/triggers", list_environment_triggers, methods=["GET"]),
    Route("/triggers/{trigger_id}", get_trigger, methods=["GET"]),
    Route("/triggers/{trigger_id}", patch_trigger, methods=["PATCH"]),
    Route("/triggers/{trigger_id}", delete_trigger, methods=["DELETE"]),
]
