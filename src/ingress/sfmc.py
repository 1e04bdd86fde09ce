"""SFMC triggers: a Salesforce Marketing Cloud Journey Builder custom activity (SPEC §6, docs/sfmc.md).

An `sfmc` trigger's hook id is the secret part of its activity's URLs:

    GET  /sfmc/{key}/config.json    the activity's configuration, which Journey Builder loads
    POST /sfmc/{key}/execute        a contact reached the activity: start the flow for it
    POST /sfmc/{key}/save|publish|validate|stop    lifecycle calls: verified, answered 200 {}

Every POST body is a JWT that Journey Builder signs with HS256 and the
installed package's signing secret (ingress.hs256); one that does not verify
is a 401 `signature_invalid`, logged with its cause (never the token) and
storing nothing. An unknown key is a 404, a disabled trigger a 403.

An execute runs the trigger's mapping on the decoded JWT as a request's JSON
body, with `body.arguments` holding its `inArguments` merged into one
object, and then stores the invocation before answering, as a webhook's. Its
`flowInvocationId` (unless the mapping gives one) derives from what
identifies this contact's pass through the activity, so the retries Journey
Builder makes after a timeout or a 5xx start the flow once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import refuse_unstorable, request_body, services
from ingress.api.triggers import base_url
from ingress.api.views import sfmc_endpoint
from ingress.errors import ApiError
from ingress.hs256 import JwtInvalid, verify_hs256
from ingress.jsonio import json_response
from ingress.redaction import redact_headers
from ingress.refusals import Refusal, acceptance_refusal, mapping_refusal
from mapper.request import json_request, normalize_headers
from store.clock import iso, utcnow
from store.ids import new_id, new_uuid7
from store.invocations import Acceptance, AcceptRequest, accept_batch
from store.triggers import Trigger, TriggerWithFlow, load_keyed_trigger

logger = logging.getLogger("flowhook.ingress")

KIND = "sfmc"
LIFECYCLE = ("save", "publish", "validate", "stop")
#: What a pass of a contact through an activity is known by when the call has no `activityInstanceId`.
PASS_FIELDS = ("journeyId", "definitionInstanceId", "keyValue")
MAX_KEY_LENGTH = 128  # a flowInvocationId's (schemas/trigger-request.schema.json)
PREFIX = "sfmc:"


def activity_config(endpoint: str) -> dict[str, Any]:
    """The custom activity's config.json (Journey Builder's workflow API 1.1).

    `isConfigured`: the activity needs no configuration step in Journey
    Builder (flowhook serves no configuration UI); every call is JWT-signed.
    Journey Builder retries an execute after a timeout or a 5xx, which the
    derived flowInvocationId makes harmless.
    """
    signed = {"useJwt": True}
    return {
        "workflowApiVersion": "1.1",
        "metaData": {"category": "message", "isConfigured": True},
        "type": "REST",
        "lang": {"en-US": {"name": "flowhook Action Flow", "description": "Start an Action Flow for the contact."}},
        "arguments": {
            "execute": {
                "inArguments": [{"userId": "{{Contact.Key}}"}],
                "outArguments": [],
                "url": f"{endpoint}/execute",
                **signed,
                "timeout": 20000,
                "retryCount": 3,
                "retryDelay": 1000,
                "concurrentRequests": 5,
            }
        },
        "configurationArguments": {name: {"url": f"{endpoint}/{name}", **signed} for name in LIFECYCLE},
        "wizardSteps": [],
        "userInterfaces": {"configModal": {"fullscreen": False}},
        "schema": {
            "arguments": {
                "execute": {
                    "inArguments": [{"userId": {"dataType": "Text", "isNullable": False, "direction": "in"}}],
                    "outArguments": [],
                }
            }
        },
    }


async def config_json(request: Request) -> Response:
    target = await _target(request)
    return json_response(activity_config(sfmc_endpoint(base_url(request), target.trigger)))


async def lifecycle(request: Request) -> Response:
    """save, publish, validate, stop: nothing to do beyond checking that Journey Builder sent them."""
    await _verified(request, (await _target(request)).trigger)
    return json_response({})


async def execute(request: Request) -> Response:
    target = await _target(request)
    trigger = target.trigger
    claims, payload = await _verified(request, trigger)
    refuse_unstorable(claims, look_for_nul=b"\\u0000" in payload)
    live = trigger.mode == "live"
    result = await services(request).runner.run_stored(target, live, mapping_request(request, claims, payload))
    _refuse(trigger, mapping_refusal(result))
    if result.skipped:
        return json_response({"skipped": True})
    output = result.output
    assert output is not None  # judged valid
    given = output.get("flowInvocationId") or invocation_key(claims)
    accept = AcceptRequest(
        environment_id=trigger.environment_id,
        flow_id=trigger.flow_id,
        trigger_id=trigger.id,
        request_id=new_id("req"),
        mode=trigger.mode,
        flow_invocation_id=given or new_uuid7(),
        payload=output,
        log=None,
        fresh_key=given is None,
        given=result.mapped,
        flow_version=target.published_version,  # whose variables the mapping applied, if live
    )
    acceptance: Acceptance = await services(request).store.submit(accept_batch, accept)
    if acceptance.verdict == "trigger_deleted":  # while its mapping ran: the activity's URL is dead now
        raise ApiError(404, "activity_not_found", "no Journey Builder activity at this URL")
    _refuse(trigger, acceptance_refusal(acceptance, accept.flow_invocation_id))
    if acceptance.verdict == "accepted":
        services(request).invocations_arrived()
    return json_response({"flowInvocationId": accept.flow_invocation_id, "mode": trigger.mode})


def invocation_key(claims: dict[str, Any]) -> str | None:
    """The flowInvocationId of this contact's pass through the activity: `sfmc:` + its `activityInstanceId`,
    else a digest of `journeyId`, `definitionInstanceId` and `keyValue`; None when the call has none of them."""
    instance = claims.get("activityInstanceId")
    if isinstance(instance, str) and instance and len(PREFIX + instance) <= MAX_KEY_LENGTH:
        return PREFIX + instance
    parts = [claims.get(name) for name in PASS_FIELDS]
    if all(part is None for part in parts):
        return None
    return PREFIX + hashlib.sha256(orjson.dumps(parts)).hexdigest()


async def _target(request: Request) -> TriggerWithFlow:
    """The path's SFMC trigger with its flow: 404 for an unknown key, 403 when the trigger is disabled."""
    key: str = request.path_params["key"]
    found = await services(request).store.read(lambda conn: load_keyed_trigger(conn, KIND, key))
    if found is None:
        raise ApiError(404, "activity_not_found", "no Journey Builder activity at this URL")
    if found.trigger.mode == "disabled":
        raise ApiError(403, "trigger_disabled", "this SFMC trigger is disabled")
    return found


async def _verified(request: Request, trigger: Trigger) -> tuple[dict[str, Any], bytes]:
    """The JWT body's claims and payload JSON, or a 401 (the cause is logged, the token never)."""
    token = await request_body(request)
    secret = (trigger.verification or {}).get("secret")
    try:
        if not isinstance(secret, str) or not secret:  # saved triggers have one: fail closed all the same
            raise JwtInvalid("the trigger has no signing secret")
        return verify_hs256(token, secret, time.time())
    except JwtInvalid as invalid:
        logger.warning(
            "SFMC %s call to trigger %s refused: %s", request.url.path.rpartition("/")[2], trigger.id, invalid
        )
        message = "the body is not a JWT signed with this activity's signing secret"
        raise ApiError(401, "signature_invalid", message) from None


def mapping_request(request: Request, claims: dict[str, Any], payload: bytes) -> dict[str, Any]:
    """What the mapping sees: the decoded JWT as a JSON body, plus `arguments`, its `inArguments` (a list of
    objects) merged into one object, later ones winning."""
    arguments: dict[str, Any] = {}
    in_arguments = claims.get("inArguments")
    for item in in_arguments if isinstance(in_arguments, list) else []:
        if isinstance(item, dict):
            arguments.update(item)
    headers = redact_headers(normalize_headers(request.headers.items()), ())
    body = {**claims, "arguments": arguments}
    return json_request(request.url.path, body, iso(utcnow()), headers=headers, raw_body=payload.decode())


def _refuse(trigger: Trigger, refusal: Refusal | None) -> None:
    """Raise `refusal` (ingress.refusals) as the answer, its detail logged."""
    if refusal is not None:
        logger.warning("SFMC execute of trigger %s refused: %s", trigger.id, refusal.detail)
        raise ApiError(refusal.status, refusal.code, refusal.message, **refusal.extra)


routes = [
    Route("/sfmc/{key}/config.json", config_json, methods=["GET"]),
    Route("/sfmc/{key}/execute", execute, methods=["POST"]),
    *(Route(f"/sfmc/{{key}}/{name}", lifecycle, methods=["POST"]) for name in LIFECYCLE),
]
