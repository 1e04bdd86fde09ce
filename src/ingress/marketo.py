"""Adobe Marketo Self-Service Flow Step (SPEC §6): a marketo trigger is a flow step service (docs/marketo.md).

Under `/marketo/{key}/` (the key is the trigger's unguessable `hook_id`):

- `GET serviceDefinition.json`: the OpenAPI document Marketo installs the
  service from (no credentials needed: it names the paths, not the key);
- `GET getServiceDefinition`: the service definition proper (the flow step's
  `userIdField`, the contexts it wants, apiKey auth in `x-api-key`);
- `GET status`: the service's health, polled nightly by Marketo;
- `POST submitAsyncAction`: a batch of leads, stored whole as a bulk task of
  kind `marketo` and answered 201 once committed; the bulk runner maps and
  starts each lead (flows.marketo_leads), then calls `callbackUrl`
  (flows.marketo_callbacks).

Everything but the OpenAPI document needs the trigger's API key in
`x-api-key`, compared in constant time. The order of refusals is a
webhook's: unknown key 404, disabled 403, key missing or wrong 401.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.marketo_callbacks import callback_url_problem, pending_callback
from flows.marketo_leads import DEFAULT_USER_ID_FIELD
from ingress.api.common import MAX_BODY_BYTES, parsed_json, refuse_unstorable, request_body, services
from ingress.api.triggers import base_url
from ingress.api.views import marketo_service_url
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.marketo_keys import accepts
from store.bulk_tasks import MARKETO, create_task
from store.clock import utcnow
from store.flows import FlowArchived
from store.triggers import TriggerWithFlow, load_keyed_trigger

log = logging.getLogger("flowhook.ingress")

MAX_SUBMISSION_BYTES = 4 * MAX_BODY_BYTES  # a batch of leads with their fields
MAX_LEADS = 10_000
API_KEY_HEADER = "x-api-key"
SCHEMA_VERSION = "1.0.0"
SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]


async def _target(request: Request) -> TriggerWithFlow:
    key = request.path_params["key"]
    target = await services(request).store.read(lambda conn: load_keyed_trigger(conn, MARKETO, key))
    if target is None:
        raise ApiError(404, "not_found", "no Marketo flow step service at this URL")
    return target


async def _authorized(request: Request) -> TriggerWithFlow:
    """The path's trigger if it is enabled and the request carries its API key."""
    target = await _target(request)
    trigger = target.trigger
    if trigger.mode == "disabled":
        raise ApiError(403, "trigger_disabled", "this flow step service's trigger is disabled")
    if not accepts(trigger.verification, request.headers.get(API_KEY_HEADER, ""), utcnow()):
        log.warning("marketo trigger %s: %s missing or wrong", trigger.id, API_KEY_HEADER)
        raise ApiError(401, "api_key_invalid", f"{API_KEY_HEADER} is missing or wrong")
    return target


async def service_document(request: Request) -> Response:
    """The OpenAPI document Marketo's Service Providers menu installs the service from."""
    await _target(request)
    url = marketo_service_url(base_url(request), request.path_params["key"])
    responses = {"401": {"description": "x-api-key missing or wrong"}}
    document = {
        "openapi": "3.0.0",
        "info": {"title": "flowhook Action Flow", "version": "1.0.0", "description": "Starts an Action Flow per lead."},
        "x-schemaVersion": SCHEMA_VERSION,
        "x-providerName": "flowhook",
        "x-providerDescription": "Starts an Action Flow for each lead that reaches this flow step.",
        "servers": [{"url": url}],
        "paths": {
            "/submitAsyncAction": {
                "post": {
                    "operationId": "submitAsyncAction",
                    "description": "A batch of leads; answered 201, reported on through callbackUrl.",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {"201": {"description": "Stored; processed asynchronously"}, **responses},
                }
            },
            "/getServiceDefinition": {
                "get": {"operationId": "getServiceDefinition", "responses": {"200": {"description": "OK"}, **responses}}
            },
            "/status": {"get": {"operationId": "status", "responses": {"200": {"description": "OK"}, **responses}}},
        },
        "components": {"securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}}},
        "security": SECURITY,
    }
    return json_response(document)


async def service_definition(request: Request) -> Response:
    """The service definition: the flow step's one field, `userIdField`, and the contexts it reads."""
    await _authorized(request)
    url = marketo_service_url(base_url(request), request.path_params["key"])
    user_id_field = {
        "apiName": "userIdField",
        "i18n": {
            "en_US": {
                "name": "User id field",
                "description": f"The lead field with the user id the flow targets ({DEFAULT_USER_ID_FIELD} if blank)",
            }
        },
        "dataType": "string",
    }
    definition = {
        "apiName": "flowhookActionFlow",
        "provider": "flowhook",
        "i18n": {
            "en_US": {
                "name": "Start Action Flow",
                "filterName": "Action Flow was started",
                "triggerName": "Starts Action Flow",
                "description": "Starts an Action Flow for the lead",
            }
        },
        "invocationEndpoint": f"{url}submitAsyncAction",
        "statusEndpoint": f"{url}status",
        "authSetting": {"authType": "apiKey", "headerName": API_KEY_HEADER},
        "primaryAttribute": "userIdField",
        "invocationPayloadDef": {
            "flowAttributes": [user_id_field],
            "userDrivenMapping": True,
            "campaignContext": True,
            "subscriptionContext": True,
        },
        "callbackPayloadDef": {"attributes": [], "userDrivenMapping": False},
    }
    return json_response(definition)


async def status(request: Request) -> Response:
    """Marketo's nightly health poll (the SPI's `serviceStatus`): info, warnings and errors, so that a flow step
    that will fail every lead says so in Marketo's service log before a campaign runs it. A test-mode trigger is
    a warning; an archived flow, or a live trigger whose flow was never published, an error."""
    target = await _authorized(request)
    trigger = target.trigger
    warnings = ["the trigger is in test mode: only test users receive cards"] if trigger.mode == "test" else []
    errors = []
    if target.flow_archived:
        errors.append("the Action Flow is archived: every lead fails (FLOW_ARCHIVED) until it is unarchived")
    elif trigger.mode == "live" and target.published_version is None:
        errors.append("the Action Flow is not published: every lead fails (FLOW_NOT_PUBLISHED) until it is")
    info = [f"trigger {trigger.id} is {trigger.mode}"]
    return json_response({"status": "error" if errors else "ok", "info": info, "warnings": warnings, "errors": errors})


async def submit_async_action(request: Request) -> Response:
    """Store the submission whole as a task and answer 201 once it is committed; the runner does the rest."""
    trigger = (await _authorized(request)).trigger
    submission = checked_submission(await _json_body(request), services(request).settings.marketo_allow_http_callbacks)
    task_input = {"triggerId": trigger.id, "submission": submission}
    total = len(submission["objectData"])
    callback = pending_callback(submission["callbackUrl"])
    try:
        task = await services(request).store.write(
            lambda conn: create_task(
                conn, trigger.environment_id, trigger.flow_id, MARKETO, task_input, total, callback
            )
        )
    except FlowArchived:  # said in Marketo's words: the admin API's advice and the flow's id are not the sender's
        raise ApiError(409, "flow_archived", "the Action Flow this flow step starts is archived") from None
    bulk_runner = services(request).bulk_runner
    if bulk_runner is not None:
        bulk_runner.wake()
    return json_response({"taskId": task.id, "leads": total}, 201)


async def _json_body(request: Request) -> Any:
    return parsed_json(await request_body(request, MAX_SUBMISSION_BYTES))


def checked_submission(data: Any, allow_http: bool) -> dict[str, Any]:
    """`data` if it is a submission the runner can work through; a 400 naming the first problem otherwise.
    Each lead is checked later, on its own: one bad lead is reported in the callback, not refused here."""
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_submission", "the body must be a JSON object", path="$")
    refuse_unstorable(data, look_for_nul=True)
    problem = callback_url_problem(data.get("callbackUrl"), allow_http)
    if problem is not None:
        raise ApiError(400, "invalid_submission", problem, path="$.callbackUrl")
    for name in ("token", "apiCallBackKey"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise ApiError(400, "invalid_submission", f"{name} must be a non-empty string", path=f"$.{name}")
    leads = data.get("objectData")
    if not isinstance(leads, list) or len(leads) > MAX_LEADS:
        message = f"objectData must be a list of at most {MAX_LEADS} leads"
        raise ApiError(400, "invalid_submission", message, path="$.objectData")
    return data


routes = [
    Route("/marketo/{key}/serviceDefinition.json", service_document, methods=["GET"]),
    Route("/marketo/{key}/getServiceDefinition", service_definition, methods=["GET"]),
    Route("/marketo/{key}/status", status, methods=["GET"]),
    Route("/marketo/{key}/submitAsyncAction", submit_async_action, methods=["POST"]),
]
