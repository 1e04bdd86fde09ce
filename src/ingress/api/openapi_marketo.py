"""The OpenAPI description of Marketo triggers (Self-Service Flow Step services); `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from ingress.api.openapi import (
    INTEGER,
    PUBLIC,
    STRING,
    Schema,
    error_body,
    obj,
    operation,
    path_param,
    record,
    ref,
    response,
    trigger_record,
)
from ingress.marketo import API_KEY_HEADER, MAX_LEADS

TAG = "marketo"
KEY = path_param("key", "The Marketo trigger's service key: the secret part of its serviceUrl.")
# Marketo sends no admin token (PUBLIC): the URL key and the API key in x-api-key are the credentials.
API_KEY = {
    "name": API_KEY_HEADER,
    "in": "header",
    "required": True,
    "schema": STRING,
    "description": "The trigger's API key (shown once, when the trigger was created).",
}

SCHEMAS: dict[str, Schema] = {
    "MarketoTrigger": trigger_record(
        "marketo",
        {
            "serviceUrl": {**STRING, "description": "`<base>/marketo/{key}/`: the flow step service."},
            "serviceDefinitionUrl": {**STRING, "description": "What Marketo installs the service from."},
            "apiKey": {
                **STRING,
                "description": "In full in the 201 answer to its creation only; masked (`••••` + last 4) afterwards.",
            },
        },
    ),
    "MarketoSubmission": obj(
        {
            "token": {**STRING, "minLength": 1, "description": "Sent back in the callback's x-callback-token."},
            "apiCallBackKey": {**STRING, "minLength": 1, "description": "Sent back in the callback's x-api-key."},
            "callbackUrl": {**STRING, "description": "https (http only with FLOWHOOK_MARKETO_ALLOW_HTTP_CALLBACKS)."},
            "batchId": STRING,
            "context": {"type": "object", "description": "`subscription.munchkinId` is sent back in the callback."},
            "campaignContext": {"type": "object"},
            "objectData": {
                "type": "array",
                "maxItems": MAX_LEADS,
                "items": obj({"objectContext": {"type": "object"}, "flowStepContext": {"type": "object"}}),
            },
        },
        ("token", "apiCallBackKey", "callbackUrl", "objectData"),
    ),
    "MarketoSubmitted": record(
        {"taskId": {**STRING, "description": "GET /v1/{env}/bulk-tasks/{taskId} shows it."}, "leads": INTEGER}
    ),
    "MarketoProblem": error_body({"path": STRING}),
}


def _refusals(*extra: tuple[str, str]) -> dict[str, Any]:
    return {
        "401": response("api_key_invalid: x-api-key missing or wrong.", ref("MarketoProblem")),
        "403": response("trigger_disabled.", ref("MarketoProblem")),
        "404": response("No Marketo trigger has this key.", ref("MarketoProblem")),
        **{status: response(text, ref("MarketoProblem")) for status, text in extra},
    }


def _keyed(summary: str, ok: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return operation(summary, TAG, {**ok, **_refusals()}, parameters=[KEY, API_KEY], security=PUBLIC, **kwargs)


def marketo_paths() -> dict[str, Any]:
    submit = _keyed(
        "A batch of leads from a Marketo smart campaign",
        {
            "201": response("Stored; each lead is mapped and started in the background.", ref("MarketoSubmitted")),
            "400": response("invalid_json or invalid_submission (with `path`).", ref("MarketoProblem")),
            "409": response("flow_archived: the trigger's flow is archived.", ref("MarketoProblem")),
            "413": response("body_too_large.", ref("MarketoProblem")),
        },
        description="Answered once stored; the callback reports every lead (docs/marketo.md).",
        body=ref("MarketoSubmission"),
    )
    return {
        "/marketo/{key}/serviceDefinition.json": {
            "get": operation(
                "The OpenAPI document Marketo installs the service from",
                TAG,
                {
                    "200": response("x-schemaVersion, the paths, apiKey auth.", {"type": "object"}),
                    "404": _refusals()["404"],
                },
                parameters=[KEY],
                security=PUBLIC,
            )
        },
        "/marketo/{key}/getServiceDefinition": {
            "get": _keyed(
                "The service definition (the flow step's userIdField)", {"200": response("It.", {"type": "object"})}
            )
        },
        "/marketo/{key}/status": {
            "get": _keyed(
                "The service's status, polled nightly by Marketo", {"200": response("It.", {"type": "object"})}
            )
        },
        "/marketo/{key}/submitAsyncAction": {"post": submit},
    }
