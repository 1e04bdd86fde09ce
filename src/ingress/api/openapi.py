"""`GET /openapi.json`: the OpenAPI 3.1 description of the webhook endpoint and the management API.

Written out here rather than generated: the routes are few and the
description is part of the contract. The mapping, verification and trigger
request schemas are the files in `schemas/` themselves (OpenAPI 3.1 speaks
JSON Schema 2020-12).
"""

from __future__ import annotations

import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ingress.hooks import CAUSES
from ingress.jsonio import json_response
from mapper.resources import load_schema
from store.triggers import MODES

JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STRING: Schema = {"type": "string"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
INTEGER: Schema = {"type": "integer"}
TIME: Schema = {"type": "string", "format": "date-time"}


def responses(success: int, schema: Schema | None, description: str, *errors: int) -> dict[str, Any]:
    found: dict[str, Any] = {str(success): {"description": description}}
    if schema is not None:
        found[str(success)]["content"] = {JSON: {"schema": schema}}
    for status in errors:
        found[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return found


def operation(
    summary: str,
    tag: str,
    ok: dict[str, Any],
    *,
    body: Schema | None = None,
    parameters: list[dict[str, Any]] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": ok}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if parameters:
        op["parameters"] = parameters
    if public:
        op["security"] = []
    return op


def path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STRING, "description": description}


def query_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


ENV = path_param("env", "Environment id; `default` exists from the first start.")
FLOW = path_param("flowId", "Flow id (`flw_…`).")
TRIGGER = path_param("triggerId", "Trigger id (`trg_…`).")
REQUEST = path_param("requestId", "Request-log id (`req_…`).")
PAGE = [
    query_param("status", STRING, "An HTTP status (`202`) or a class (`4xx`)."),
    query_param("cause", {"enum": list(CAUSES)}, "Only entries with this cause."),
    query_param("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Page size."),
    query_param("cursor", STRING, "`nextCursor` of the previous page."),
]

COMPONENT_SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": STRING,
                    "message": STRING,
                    "requestId": {**STRING, "description": "Webhook requests only: the request-log id."},
                    "path": {**STRING, "description": "Where in the submitted JSON the problem is."},
                },
                ("code", "message"),
            )
        },
        ("error",),
    ),
    "Variable": obj(
        {
            "name": STRING,
            "type": {"enum": ["string", "number", "boolean", "object"]},
            "default": {},
            "required": {"type": "boolean"},
        },
        ("name",),
    ),
    "FlowInput": obj(
        {"name": STRING, "variables": {"type": "array", "items": ref("Variable")}, "steps": {"type": "array"}},
        ("name",),
    ),
    "Flow": obj(
        {
            "id": STRING,
            "environmentId": STRING,
            "name": STRING,
            "variables": {"type": "array", "items": ref("Variable")},
            "steps": {"type": "array"},
            "draftRevision": INTEGER,
            "publishedVersion": {"type": ["integer", "null"]},
            "createdAt": TIME,
            "updatedAt": TIME,
        }
    ),
    "TriggerInput": obj(
        {
            "type": {"const": "webhook"},
            "mode": {"enum": list(MODES), "default": "test"},
            "mapping": ref("MappingSpec"),
            "verification": {"oneOf": [ref("Verification"), {"type": "null"}]},
            "allowedIps": {"type": "array", "items": STRING, "description": "IPv4/IPv6 addresses and CIDR ranges."},
        }
    ),
    "Trigger": obj(
        {
            "id": STRING,
            "environmentId": STRING,
            "flowId": STRING,
            "type": {"const": "webhook"},
            "hookId": STRING,
            "url": {**STRING, "description": "Where the sender posts: `<base>/hooks/{hookId}`."},
            "mode": {"enum": list(MODES)},
            "mapping": ref("MappingSpec"),
            "verification": {"type": ["object", "null"], "description": "The config with every secret masked."},
            "allowedIps": {"type": "array", "items": STRING},
            "captureArmed": {"type": "boolean"},
            "createdAt": TIME,
            "updatedAt": TIME,
        }
    ),
    "RawRequest": obj(
        {
            "method": {"enum": ["POST", "PUT"], "default": "POST"},
            "path": STRING,
            "headers": {"type": "object", "additionalProperties": STRING},
            "query": {"type": ["string", "object"]},
            "contentType": STRING,
            "body": {"description": "The raw body text, or any JSON value (then sent as application/json)."},
        }
    ),
    "Sample": obj(
        {
            "id": STRING,
            "triggerId": STRING,
            "source": {"enum": ["captured", "pasted"]},
            "method": STRING,
            "path": STRING,
            "headers": {"type": "object", "additionalProperties": STRING},
            "query": STRING,
            "contentType": NULLABLE_STRING,
            "body": STRING,
            "createdAt": TIME,
        }
    ),
    "PreviewInput": obj(
        {
            "mapping": ref("MappingSpec"),
            "request": ref("RawRequest"),
            "sampleId": STRING,
            "variables": {"type": "array", "items": ref("Variable")},
            "flowId": {**STRING, "description": "Use this flow's draft variables (unless `variables` is given)."},
        },
        ("mapping",),
    ),
    "MappingResult": obj(
        {
            "ok": {"type": "boolean"},
            "skipped": {"type": "boolean"},
            "output": {"oneOf": [ref("TriggerRequest"), {"type": "object"}, {"type": "null"}]},
            "error": {"type": ["object", "null"], "description": "{type, message, line, column, stack}"},
            "validationErrors": {"type": "array", "items": obj({"path": STRING, "message": STRING})},
            "logs": {"type": "array", "items": obj({"level": STRING, "message": STRING})},
            "durationMs": {"type": "number"},
        }
    ),
    "RequestSummary": obj(
        {
            "id": STRING,
            "triggerId": NULLABLE_STRING,
            "hookId": STRING,
            "receivedAt": TIME,
            "method": STRING,
            "status": INTEGER,
            "cause": {"enum": list(CAUSES)},
            "message": NULLABLE_STRING,
            "mode": NULLABLE_STRING,
            "clientIp": NULLABLE_STRING,
            "flowInvocationId": NULLABLE_STRING,
            "invocationId": NULLABLE_STRING,
            "replayOf": NULLABLE_STRING,
        }
    ),
    "RequestEntry": {
        "allOf": [
            ref("RequestSummary"),
            obj(
                {
                    "path": STRING,
                    "query": STRING,
                    "headers": {"type": "object", "description": "Secret-bearing values replaced by [redacted]."},
                    "contentType": NULLABLE_STRING,
                    "body": {**STRING, "description": "Capped (64 KiB by default); see bodyTruncated."},
                    "bodyBytes": INTEGER,
                    "bodyTruncated": {"type": "boolean"},
                    "verified": {"type": "boolean", "description": "Passed the IP and signature checks."},
                    "output": {"type": ["object", "null"]},
                    "mapping": {"oneOf": [ref("MappingResult"), {"type": "null"}]},
                    "response": {"type": ["object", "null"], "description": "The body the sender received."},
                }
            ),
        ]
    },
    "RequestPage": obj(
        {"data": {"type": "array", "items": ref("RequestSummary")}, "nextCursor": NULLABLE_STRING},
    ),
    "Accepted": obj(
        {"requestId": STRING, "flowInvocationId": STRING, "mode": {"enum": ["test", "live"]}},
        ("requestId", "flowInvocationId", "mode"),
    ),
    "Replay": obj(
        {
            "requestId": STRING,
            "replayOf": STRING,
            "status": INTEGER,
            "cause": {"enum": list(CAUSES)},
            "response": {"type": "object"},
        }
    ),
}

ERROR_STATUSES = {
    400: "Bad request (invalid JSON, parameter or body).",
    401: "Missing or wrong admin token; for webhooks: signature_invalid / timestamp_out_of_tolerance.",
    403: "trigger_disabled / ip_not_allowed.",
    404: "Not found (hook, environment, flow, trigger, sample, request).",
    409: "idempotency_conflict / flow_not_published / replay_not_allowed.",
    413: "Body too large.",
    415: "Unsupported content type.",
    422: "Invalid input (with `path`), mapping_error or validation_error.",
    503: "sandbox_crashed or store_unavailable: retry later.",
}

WEBHOOK_ERRORS = (400, 401, 403, 404, 409, 413, 415, 422, 503)

WEBHOOK_DESCRIPTION = """The webhook endpoint: no admin token; the hookId in the URL is the credential, \
optionally with an IP allowlist and a signature check. Checks run in this order, each failure answered with \
its status and recorded in the request log: 404 hook_not_found, 403 trigger_disabled, 403 ip_not_allowed, \
413 body_too_large, 415 unsupported_media_type, 401 signature_invalid, 401 timestamp_out_of_tolerance, \
(armed capture: 202 {captured: true}), 400 invalid_body, 200 skipped, 422 mapping_error, 422 validation_error, \
409 idempotency_conflict, 409 flow_not_published, 202 accepted (sent after the invocation is committed). \
A repeat with the same flowInvocationId and payload gets the original 202 body and `Idempotent-Replayed: true`."""


def _paths() -> dict[str, Any]:
    flow_body = ref("FlowInput")
    accepted = {"oneOf": [ref("Accepted"), obj({"captured": {"const": True}, "requestId": STRING})]}
    webhook_ok = responses(202, accepted, "Accepted (stored durably) or captured as a sample.", *WEBHOOK_ERRORS)
    webhook_ok["200"] = {
        "description": "The mapping skipped this request (returned null).",
        "content": {JSON: {"schema": obj({"skipped": {"const": True}, "requestId": STRING})}},
    }
    webhook = operation(
        "Deliver a webhook",
        "webhooks",
        webhook_ok,
        public=True,
        parameters=[path_param("hookId", "The secret part of the trigger's URL.")],
    )
    webhook["description"] = WEBHOOK_DESCRIPTION
    webhook["requestBody"] = {
        "content": {media: {} for media in (JSON, "application/x-www-form-urlencoded", "text/plain")}
    }
    return {
        "/hooks/{hookId}": {"post": webhook, "put": webhook},
        "/healthz": {
            "get": operation(
                "Liveness", "service", responses(200, obj({"ok": {"type": "boolean"}}), "Up."), public=True
            )
        },
        "/openapi.json": {
            "get": operation("This description", "service", responses(200, {"type": "object"}, "OpenAPI"), public=True)
        },
        "/v1/{env}/action-flows": {
            "parameters": [ENV],
            "post": operation(
                "Create a flow", "flows", responses(201, ref("Flow"), "Created.", 401, 404, 422), body=flow_body
            ),
            "get": operation(
                "List flows",
                "flows",
                responses(200, obj({"data": {"type": "array", "items": ref("Flow")}}), "Flows.", 401, 404),
            ),
        },
        "/v1/{env}/action-flows/{flowId}": {
            "parameters": [ENV, FLOW],
            "get": operation("Read a flow", "flows", responses(200, ref("Flow"), "The flow.", 401, 404)),
            "put": operation(
                "Replace the draft", "flows", responses(200, ref("Flow"), "Updated.", 401, 404, 422), body=flow_body
            ),
        },
        "/v1/{env}/action-flows/{flowId}/publish": {
            "parameters": [ENV, FLOW],
            "post": operation(
                "Publish the draft as the next version", "flows", responses(200, ref("Flow"), "Published.", 401, 404)
            ),
        },
        "/v1/{env}/action-flows/{flowId}/triggers": {
            "parameters": [ENV, FLOW],
            "post": operation(
                "Create a webhook trigger",
                "triggers",
                responses(201, ref("Trigger"), "Created (mode test unless given).", 401, 404, 422),
                body=ref("TriggerInput"),
            ),
            "get": operation(
                "List the flow's triggers",
                "triggers",
                responses(200, obj({"data": {"type": "array", "items": ref("Trigger")}}), "Triggers.", 401, 404),
            ),
        },
        "/v1/{env}/triggers/{triggerId}": {
            "parameters": [ENV, TRIGGER],
            "get": operation("Read a trigger", "triggers", responses(200, ref("Trigger"), "The trigger.", 401, 404)),
            "patch": operation(
                "Change mode, mapping, verification or allowedIps",
                "triggers",
                responses(200, ref("Trigger"), "Updated.", 401, 404, 422),
                body=ref("TriggerInput"),
            ),
            "delete": operation(
                "Delete a trigger with its samples and log", "triggers", responses(204, None, "Deleted.", 401, 404)
            ),
        },
        "/v1/{env}/triggers/{triggerId}/capture": {
            "parameters": [ENV, TRIGGER],
            "post": operation(
                "Arm capture: the next request becomes a sample and starts nothing",
                "samples",
                responses(200, obj({"triggerId": STRING, "armed": {"type": "boolean"}}), "Armed.", 401, 404),
            ),
            "delete": operation(
                "Disarm capture",
                "samples",
                responses(200, obj({"triggerId": STRING, "armed": {"type": "boolean"}}), "Disarmed.", 401, 404),
            ),
        },
        "/v1/{env}/triggers/{triggerId}/samples": {
            "parameters": [ENV, TRIGGER],
            "get": operation(
                "List samples, newest first",
                "samples",
                responses(200, obj({"data": {"type": "array", "items": ref("Sample")}}), "Samples.", 401, 404),
            ),
            "post": operation(
                "Paste a sample",
                "samples",
                responses(201, ref("Sample"), "Saved.", 401, 404, 422),
                body=ref("RawRequest"),
            ),
        },
        "/v1/{env}/mappings/preview": {
            "parameters": [ENV],
            "post": operation(
                "Run a mapping on a request or sample",
                "samples",
                responses(200, ref("MappingResult"), "The result (ok or not).", 400, 401, 404, 415, 422),
                body=ref("PreviewInput"),
            ),
        },
        "/v1/{env}/triggers/{triggerId}/requests": {
            "parameters": [ENV, TRIGGER],
            "get": operation(
                "The trigger's request log, newest first",
                "requests",
                responses(200, ref("RequestPage"), "A page.", 400, 401, 404),
                parameters=PAGE,
            ),
        },
        "/v1/{env}/requests": {
            "parameters": [ENV],
            "get": operation(
                "The environment's request log (and requests to unknown hooks)",
                "requests",
                responses(200, ref("RequestPage"), "A page.", 400, 401, 404),
                parameters=[*PAGE, query_param("triggerId", STRING, "Only this trigger.")],
            ),
        },
        "/v1/{env}/requests/{requestId}": {
            "parameters": [ENV, REQUEST],
            "get": operation("One logged request", "requests", responses(200, ref("RequestEntry"), "It.", 401, 404)),
        },
        "/v1/{env}/requests/{requestId}/replay": {
            "parameters": [ENV, REQUEST],
            "post": operation(
                "Replay under the trigger's current configuration",
                "requests",
                responses(200, ref("Replay"), "The replay's outcome.", 401, 404, 409),
            ),
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    from ingress.api import openapi_api_triggers as api_triggers  # noqa: PLC0415 - it builds on this module
    from ingress.api.openapi_flows import FLOW_SCHEMAS, flow_paths  # noqa: PLC0415 - it builds on this module

    schemas = {
        **COMPONENT_SCHEMAS,
        **FLOW_SCHEMAS,
        "MappingSpec": load_schema("mapping"),
        "Verification": load_schema("verification"),
        "TriggerRequest": load_schema("trigger-request"),
        **api_triggers.SCHEMAS,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flowhook",
            "version": "1",
            "description": "Webhook ingress and management API. See docs/webhooks.md.",
        },
        "security": [{"adminToken": []}],
        "paths": {**_paths(), **flow_paths(), **api_triggers.api_trigger_paths()},
        "components": {
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token (FLOWHOOK_ADMIN_TOKEN).",
                },
                **api_triggers.SECURITY_SCHEMES,
            },
            "schemas": schemas,
            "responses": {
                f"Error{status}": {"description": text, "content": {JSON: {"schema": ref("Error")}}}
                for status, text in ERROR_STATUSES.items()
            },
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    return json_response(openapi_document())
