"""`POST /v1/{env}/mappings/preview`: run a mapping on a sample, as the editor does.

JavaScript runs in a sandbox worker of the previews' own
(ingress.preview_sandbox), under the limits a live request has; the answer
is the MappingResult (output, validation errors, console lines, time).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, field, json_object, read_found, refuse_unknown, services
from ingress.api.samples import live_limits, sample_errors, sample_input
from ingress.api.triggers import checked_mapping, invalid_mapping
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.redaction import redact_headers
from ingress.settings import Settings
from mapper import MappingSpecError
from mapper.sample import is_request_object, read_sample
from store import flows, samples

PREVIEW_FIELDS = {"mapping", "request", "sampleId", "variables", "flowId"}


def _inline_request(given: Any, settings: Settings) -> dict[str, Any]:
    """The `request` a mapping sees for `$.request` (`mapper.sample.read_sample`), within `settings`' limits.
    A raw request's secret headers are redacted, as a pasted sample's are; a request object is used as it is."""
    with sample_errors():
        request = read_sample(given, "$.request", live_limits(settings))
    if is_request_object(given):
        return request
    return {**request, "headers": redact_headers(request["headers"])}


async def _request(request: Request, env: str, data: dict[str, Any]) -> dict[str, Any]:
    if ("request" in data) == ("sampleId" in data):
        raise ApiError(422, "invalid_field", "give exactly one of request or sampleId", path="$")
    if "sampleId" in data:
        sample_id = field(data, "sampleId", _is_string, "a string", "")
        sample = await read_found(request, "sample", sample_id, lambda conn: samples.get_sample(conn, env, sample_id))
        return sample_input(sample)
    return _inline_request(data["request"], services(request).settings)


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


async def _variables(request: Request, env: str, data: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Explicit `variables`, else the draft variables of `flowId`, else none."""
    if "variables" in data:
        variables = data["variables"]
        if not isinstance(variables, list) or not all(isinstance(item, dict) for item in variables):
            raise ApiError(422, "invalid_field", "variables must be a list of variable objects", path="$.variables")
        return variables
    if "flowId" in data:
        flow_id = field(data, "flowId", _is_string, "a string", "")
        declared = await read_found(request, "flow", flow_id, lambda conn: flows.declared_variables(conn, env, flow_id))
        return declared.draft
    return None


@admin_only
async def preview(request: Request) -> Response:
    env = await environment(request)
    data = await json_object(request)
    refuse_unknown(data, PREVIEW_FIELDS)
    variables = await _variables(request, env, data)
    spec = await checked_mapping(request, data.get("mapping"), variables)
    mapping_request = await _request(request, env, data)
    try:
        result = await services(request).previews.run(spec, variables, mapping_request)
    except MappingSpecError as error:
        raise invalid_mapping(error) from None
    return json_response(result.to_dict())


routes = [Route("/mappings/preview", preview, methods=["POST"])]
