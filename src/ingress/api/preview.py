"""`POST /v1/{env}/mappings/preview`: run a mapping on a sample, as the editor does.

JavaScript runs in a sandbox worker of the previews' own
(ingress.preview_sandbox), under the limits a live request has; the answer
is the MappingResult (output, validation errors, console lines, time), with
`variablesOf` saying whose flow variables it applied, and `mapped`: the
output as the mapping returned it, before those variables' defaults filled
it in (the editor tells a field that evaluated to null by it).

The variables are what decides whether an output is valid, so a preview
made for a trigger (`triggerId`) applies the ones its requests apply: the
published version's for a live trigger, the draft's for a test one (and for a
disabled one: it takes no request, and is edited to be tested again first).
`variablesOf` picks one explicitly; `flowId` alone means the draft.

The mapping sees the request as given, secrets included, as it sees a live
one (a mapping may check a `?token=` or a header); what the answer echoes of
them (in the output, console lines, an error) is redacted, as the request log
keeps a request (docs/mapping.md, "Previews and secrets").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, field, json_object, read_found, refuse_unknown, services
from ingress.api.samples import live_limits, sample_errors, sample_input, verifier_headers
from ingress.api.triggers import checked_mapping, invalid_mapping
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.redaction import redact_values, request_secrets
from mapper import MappingSpecError
from mapper.sample import read_sample
from store import flows, samples, triggers
from store.flows import DeclaredVariables
from store.triggers import ApiTrigger, Trigger

PREVIEW_FIELDS = {"mapping", "request", "sampleId", "variables", "flowId", "triggerId", "variablesOf"}
VARIABLES_OF = ("draft", "published")


@dataclass(frozen=True)
class Variables:
    """The flow variables a preview applies (None: none), and whose they are (`variablesOf` in the answer)."""

    declared: list[dict[str, Any]] | None
    of: str | None  # "draft", "published", "given" (the body's own `variables`), or None


async def sample_request(request: Request, env: str, data: dict[str, Any]) -> dict[str, Any]:
    """The mapping's `request`: a stored sample's, or `$.request` (`mapper.sample.read_sample`, a request
    object as it is) within the server's limits."""
    if ("request" in data) == ("sampleId" in data):
        raise ApiError(422, "invalid_field", "give exactly one of request or sampleId", path="$")
    if "sampleId" in data:
        sample_id = field(data, "sampleId", _is_string, "a string", "")
        sample = await read_found(request, "sample", sample_id, lambda conn: samples.get_sample(conn, env, sample_id))
        return sample_input(sample)
    with sample_errors():
        return read_sample(data["request"], "$.request", live_limits(services(request).settings))


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


async def _trigger(request: Request, env: str, data: dict[str, Any]) -> Trigger | None:
    """The stored trigger `triggerId` names (None without one); its flow is the preview's flow."""
    if "triggerId" not in data:
        return None
    trigger_id = field(data, "triggerId", _is_string, "a string", "")

    def read(conn: Connection) -> Trigger | ApiTrigger | None:
        return triggers.get_trigger(conn, env, trigger_id)

    found: Trigger | ApiTrigger = await read_found(request, "trigger", trigger_id, read)
    if isinstance(found, ApiTrigger):
        message = f"{found.id} is the API trigger of flow {found.flow_id}: it has no mapping (give flowId instead)"
        raise ApiError(422, "invalid_field", message, path="$.triggerId")
    flow_id = data.get("flowId", found.flow_id)
    if flow_id != found.flow_id:
        message = f"flowId must be the flow of trigger {found.id}, {found.flow_id} (or be left out)"
        raise ApiError(422, "invalid_field", message, path="$.flowId")
    return found


async def _variables(request: Request, env: str, data: dict[str, Any], trigger: Trigger | None) -> Variables:
    """Explicit `variables`; else those of `variablesOf` of the trigger's flow or `flowId`, by default the
    ones `trigger`'s requests apply, or the draft's; else none."""
    of = field(data, "variablesOf", lambda value: value in VARIABLES_OF, " or ".join(VARIABLES_OF), None)
    if "variables" in data:
        if of is not None:
            raise ApiError(422, "invalid_field", "give variables or variablesOf, not both", path="$.variablesOf")
        variables = data["variables"]
        if not isinstance(variables, list) or not all(isinstance(item, dict) for item in variables):
            raise ApiError(422, "invalid_field", "variables must be a list of variable objects", path="$.variables")
        return Variables(variables, "given")
    if trigger is not None:
        flow_id = trigger.flow_id
    elif "flowId" in data:
        flow_id = field(data, "flowId", _is_string, "a string", "")
    elif of is not None:
        raise ApiError(422, "invalid_field", "variablesOf needs a flowId or a triggerId", path="$.variablesOf")
    else:
        return Variables(None, None)

    def read(conn: Connection) -> DeclaredVariables | None:
        return flows.declared_variables(conn, env, flow_id)

    declared = await read_found(request, "flow", flow_id, read)
    if of == "published" and declared.published is None:
        raise ApiError(409, "flow_not_published", f"flow {flow_id} has no published version", path="$.variablesOf")
    live = of == "published" or (of is None and trigger is not None and trigger.mode == "live")
    applied = declared.for_run(live=live)  # as the trigger's requests choose (a never published flow: the draft)
    return Variables(applied, "published" if applied is declared.published else "draft")


@admin_only
async def preview(request: Request) -> Response:
    env = await environment(request)
    data = await json_object(request)
    refuse_unknown(data, PREVIEW_FIELDS)
    trigger = await _trigger(request, env, data)
    variables = await _variables(request, env, data, trigger)
    spec = await checked_mapping(request, data.get("mapping"), variables.declared)
    mapping_request = await sample_request(request, env, data)
    try:
        result = await services(request).previews.run(spec, variables.declared, mapping_request)
    except MappingSpecError as error:
        raise invalid_mapping(error) from None
    # The trigger's signature headers are secrets too, whatever their names (`X-Custom-Check`).
    secrets = request_secrets(mapping_request, verifier_headers(trigger) if trigger is not None else ())
    answer = {**result.to_dict(), "mapped": result.mapped}
    return json_response({**redact_values(answer, secrets), "variablesOf": variables.of})


routes = [Route("/mappings/preview", preview, methods=["POST"])]
