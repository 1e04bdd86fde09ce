"""The OpenAPI description of the editor's test sends (ingress.api.send_test); `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from ingress.api.openapi import (
    ENV,
    PROBLEM,
    STRING,
    TRIGGER,
    Schema,
    closed,
    error_body,
    obj,
    operation,
    ref,
    refusal,
    response,
    responses,
)

DESCRIPTION = """Maps a stored sample (`sampleId`) or a request given whole (`request`) as a preview does, with \
`mapping` (the editor's, saved or not) or else the trigger's saved mapping, and the flow's draft variables, \
then stores a test invocation of the trigger's flow: the draft flow and draft card templates, test users only, \
cards and analytics events marked `eventSource: test`. Whatever the trigger's mode (live and disabled too; it \
is left as it is), without its IP allowlist or signature check, and not recorded in its request log. Every \
call is a new test run: it is keyed `test:` + a fresh UUID, whatever `flowInvocationId` the mapping gives \
(reported as `mappedFlowInvocationId`), so sending twice sends twice. See docs/webhooks.md."""

SCHEMAS: dict[str, Schema] = {
    "SendTestInput": closed(
        obj(
            {
                "sampleId": {**STRING, "description": "A stored sample to send (give this or `request`)."},
                "request": ref("RawRequest"),
                "mapping": {
                    **ref("MappingSpec"),
                    "description": "The mapping to send it through (the editor's, unsaved too); the trigger's saved "
                    "mapping when left out.",
                },
            }
        )
    ),
    "SendTest": obj(
        {
            "flowInvocationId": {**STRING, "description": "The test run's key: `test:` + a fresh UUID."},
            "mappedFlowInvocationId": {
                "type": ["string", "null"],
                "description": "The flowInvocationId the mapping gave, if any (not the key: see the description).",
            },
            "mode": {"const": "test"},
            "targetedUserIds": {
                "type": "array",
                "items": STRING,
                "description": "The test users among the mapped targetUserIds (each once): they get the cards.",
            },
            "ignoredUserIds": {
                "type": "array",
                "items": STRING,
                "description": "The mapped users who are not test users (each once): they get nothing.",
            },
        },
        ("flowInvocationId", "mappedFlowInvocationId", "mode", "targetedUserIds", "ignoredUserIds"),
    ),
    "SendTestRefused": error_body(
        {
            "errors": {"type": "array", "items": PROBLEM, "description": "validation_error: each problem."},
            "result": ref("MappingResult"),
            "path": STRING,
            "line": {"type": "integer"},
            "column": {"type": "integer"},
        }
    ),
}


def send_test_paths() -> dict[str, Any]:
    skipped = obj({"skipped": {"const": True}, "mode": {"const": "test"}}, ("skipped", "mode"))
    refused = (
        "mapping_error or validation_error (`errors`) as a webhook is refused, its message told in full (as the "
        "request log tells it), with the mapping's `result` as a preview shows it; "
        "invalid_mapping (`path`, `line`, `column`) for a mapping that does not compile; invalid_field or "
        "unknown_field in the body."
    )
    answers = {
        **responses(202, ref("SendTest"), "Stored as a test invocation.", 400, 401, 413, 415, 431),
        "200": response("The mapping skipped the request (returned null): nothing was sent.", skipped),
        **refusal(404, "trigger_not_found, sample_not_found (or the trigger's flow, flow_not_found)."),
        **refusal(409, "not_a_mapped_trigger (a flow's API trigger) or flow_archived."),
        "422": response(refused, ref("SendTestRefused")),
        "503": response("sandbox_crashed (the mapping's sandbox died; retry), or store_unavailable.", ref("Error")),
    }
    return {
        "/v1/{env}/triggers/{triggerId}/send-test": {
            "parameters": [ENV, TRIGGER],
            "post": operation(
                "Send a test through the trigger's mapping (the editor's Send test)",
                "samples",
                answers,
                description=DESCRIPTION,
                body=ref("SendTestInput"),
            ),
        }
    }
