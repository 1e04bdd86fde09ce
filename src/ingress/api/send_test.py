"""`POST /v1/{env}/triggers/{triggerId}/send-test`: the editor's *Send test* (the seed: "when sending a test from
within the Action Flow editor, the cards and analytics will automatically be marked as tests, and tests will
always use the current draft version of your card templates").

A stored sample, or a request given whole, is mapped as the preview maps it (`sample_request`, the previews'
sandbox, the same MappingRunner and limits as the webhook pipeline), with the mapping the editor shows (`mapping`,
saved or not; the trigger's saved one without it) and the flow's draft variables, as a test request is. An
output the pipeline would refuse is refused here with the same status and code (ingress.refusals), and the
result beside it; a valid one is stored as a test invocation of the trigger's flow: the draft flow and card
templates, test users only, `eventSource: test`. This is an admin's action on a request already in hand, so
the trigger's mode (live or disabled too, which it leaves as it is), its IP allowlist and its signature check
play no part, and it is not a request to the hook: the request log does not record it.

Every send is a new test run, as pressing the button again means: it is keyed `test:` + a fresh UUID (version
7), never by the mapped `flowInvocationId` (a sample's `evt_1` would make the second send a duplicate that
starts nothing, and would use up the key in the flow's test namespace for the webhook's own test requests).
The answer reports the mapped key beside the one stored.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.action_flow import reached
from ingress.api.common import environment, json_object, not_found, read_found, refuse_unknown, services
from ingress.api.preview import sample_request
from ingress.api.samples import verifier_headers
from ingress.api.triggers import checked_mapping, invalid_mapping
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.redaction import redact_values, request_secrets
from ingress.refusals import acceptance_refusal, mapping_refusal
from mapper import MappingResult, MappingSpecError
from store import flows, triggers
from store.ids import new_id, new_uuid7
from store.invocations import Acceptance, AcceptRequest, accept_batch
from store.test_users import test_user_ids
from store.triggers import ApiTrigger, Trigger

SEND_TEST_FIELDS = {"mapping", "request", "sampleId"}
#: What the key of every test send starts with: each send is a run of its own (see the module's docstring).
KEY_PREFIX = "test:"


async def _mapped_trigger(request: Request, env: str) -> Trigger:
    """The path's trigger (404 if none); a 409 for a flow's API trigger, which has no mapping to send through."""
    trigger_id = request.path_params["trigger_id"]

    def read(conn: Connection) -> Trigger | ApiTrigger | None:
        return triggers.get_trigger(conn, env, trigger_id)

    found: Trigger | ApiTrigger = await read_found(request, "trigger", trigger_id, read)
    if isinstance(found, ApiTrigger):
        message = (
            f"{found.id} is the API trigger of flow {found.flow_id}: it has no mapping to send a test through "
            f"(POST /v1/{env}/action-flow/{found.flow_id}/test starts a test run with an access token)"
        )
        raise ApiError(409, "not_a_mapped_trigger", message)
    return found


async def _mapped(request: Request, env: str, trigger: Trigger, data: dict[str, Any]) -> MappingResult:
    """The mapping shown (or saved) run on the request, with the flow's draft variables; a 422 `invalid_mapping`
    for one that does not compile, as the preview answers it."""

    def read(conn: Connection) -> list[dict[str, Any]] | None:
        declared = flows.declared_variables(conn, env, trigger.flow_id)
        return None if declared is None else declared.for_run(live=False)  # a test's: the draft's

    variables = await read_found(request, "flow", trigger.flow_id, read)
    spec = await checked_mapping(request, data["mapping"], variables) if "mapping" in data else trigger.mapping
    mapping_request = await sample_request(request, env, data)
    try:
        result = await services(request).previews.run(spec, variables, mapping_request)
    except MappingSpecError as error:
        raise invalid_mapping(error) from None
    _refuse(result, request_secrets(mapping_request, verifier_headers(trigger)))
    return result


def _refuse(result: MappingResult, secrets: frozenset[str]) -> None:
    """What the pipeline would refuse the output with (422 mapping_error or validation_error with `errors`, 503
    sandbox_crashed), told as the request log tells an admin (the error's message, each problem), with the
    whole `result` as a preview shows it; the request's secrets redacted from both."""
    refusal = mapping_refusal(result)
    if refusal is not None:
        shown = redact_values({"message": refusal.detail, "result": result.to_dict()}, secrets)
        raise ApiError(refusal.status, refusal.code, shown["message"], **refusal.extra, result=shown["result"])


@admin_only
async def send_test(request: Request) -> Response:
    env = await environment(request)
    trigger = await _mapped_trigger(request, env)
    data = await json_object(request)
    refuse_unknown(data, SEND_TEST_FIELDS)
    result = await _mapped(request, env, trigger, data)
    if result.skipped:
        return json_response({"skipped": True, "mode": "test"})
    output = result.output
    assert output is not None  # judged valid
    accept = AcceptRequest(
        environment_id=env,
        flow_id=trigger.flow_id,
        trigger_id=trigger.id,
        request_id=new_id("req"),
        mode="test",
        flow_invocation_id=KEY_PREFIX + new_uuid7(),
        payload=output,
        log=None,
        fresh_key=True,
        given=result.mapped,
    )
    store = services(request).store
    acceptance: Acceptance = await store.submit(accept_batch, accept)
    if acceptance.verdict == "trigger_deleted":  # while the request was being mapped
        raise not_found("trigger", trigger.id)
    refusal = acceptance_refusal(acceptance, accept.flow_invocation_id)
    if refusal is not None:  # an archived flow
        raise ApiError(refusal.status, refusal.code, refusal.message)
    services(request).invocations_arrived()
    testers = await store.read(lambda conn: test_user_ids(conn, env))
    body = {
        "flowInvocationId": accept.flow_invocation_id,
        "mappedFlowInvocationId": output.get("flowInvocationId"),
        "mode": "test",
        **reached(output["targetUserIds"], testers),
    }
    return json_response(body, 202)


routes = [Route("/triggers/{trigger_id}/send-test", send_test, methods=["POST"])]
