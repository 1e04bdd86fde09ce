"""`POST /v1/{env}/mappings/preview`: run a mapping on a sample, as the editor does.

JavaScript runs in the sandbox pool exactly as it would for a live request;
the answer is the MappingResult (output, validation errors, console lines,
time).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, field, json_object, read_found, refuse_unknown, services
from ingress.api.samples import DEFAULT_SETTINGS, mapping_input, raw_request, sample_input
from ingress.api.triggers import checked_mapping, invalid_mapping
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.mapping_runner import content_key
from ingress.settings import Settings
from mapper import MappingSpecError
from store import flows, samples

PREVIEW_FIELDS = {"mapping", "request", "sampleId", "variables", "flowId"}


def is_request_object(given: dict[str, Any]) -> bool:
    """A SPEC §2 request object (it has `rawBody` or `receivedAt`), which the mapping sees as it is."""
    return "rawBody" in given or "receivedAt" in given


def mapping_request(given: Any, at: str = "$.request", settings: Settings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """The `request` a mapping sees for a request given inline: a SPEC §2 request object as it is,
    anything else read as a raw request like a pasted sample, within `settings`' limits. `at` is where
    `given` sits in what the caller sent, so an error's `path` locates the problem there (`flowhook map`
    reads it from a file)."""
    if not isinstance(given, dict):
        raise ApiError(422, "invalid_field", "request must be an object", path=at)
    if is_request_object(given):
        return given
    try:
        raw = raw_request(given, "/hooks/preview", settings)
        return mapping_input(raw["method"], raw["path"], raw["headers"], raw["query"], raw["content_type"], raw["body"])
    except ApiError as error:
        path = error.details.get("path")
        if isinstance(path, str):
            error.details["path"] = at + path.removeprefix("$")
        raise


async def _request(request: Request, env: str, data: dict[str, Any]) -> dict[str, Any]:
    if ("request" in data) == ("sampleId" in data):
        raise ApiError(422, "invalid_field", "give exactly one of request or sampleId", path="$")
    if "sampleId" in data:
        sample_id = field(data, "sampleId", _is_string, "a string", "")
        sample = await read_found(request, "sample", sample_id, lambda conn: samples.get_sample(conn, env, sample_id))
        return sample_input(sample)
    return mapping_request(data["request"], settings=services(request).settings)


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
        flow = await read_found(request, "flow", flow_id, lambda conn: flows.get_flow(conn, env, flow_id))
        return list(flow.draft.get("variables") or [])
    return None


@admin_only
async def preview(request: Request) -> Response:
    env = await environment(request)
    data = await json_object(request)
    refuse_unknown(data, PREVIEW_FIELDS)
    variables = await _variables(request, env, data)
    spec = await checked_mapping(request, data.get("mapping"), variables)
    mapping_request = await _request(request, env, data)
    runner = services(request).runner
    try:
        prepared = runner.prepare(content_key(spec, variables), spec, variables)
        result = await runner.run(prepared, mapping_request)
    except MappingSpecError as error:
        raise invalid_mapping(error) from None
    return json_response(result.to_dict())


routes = [Route("/mappings/preview", preview, methods=["POST"])]
