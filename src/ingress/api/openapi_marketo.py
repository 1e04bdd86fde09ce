"""The OpenAPI description of Marketo triggers (Self-Service Flow Step services); `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from ingress.api.api_key_roll import OVERLAP_FIELD
from ingress.api.openapi import (
    ENV,
    INTEGER,
    NULLABLE_STRING,
    PUBLIC,
    STRING,
    Schema,
    closed,
    error_body,
    obj,
    operation,
    path_param,
    record,
    ref,
    refusal,
    response,
    responses,
    trigger_record,
)
from ingress.marketo import API_KEY_HEADER, MAX_LEADS
from ingress.marketo_keys import MAX_OVERLAP

TAG = "marketo"
MARKETO_TRIGGER = path_param("triggerId", "A Marketo trigger's id (`trg_…`); another kind of trigger is a 409.")
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
                "description": "In full only in the answer that made it (creation, roll); masked (`••••` + last 4) "
                "afterwards.",
            },
            "previousApiKeyExpiresAt": {
                **NULLABLE_STRING,
                "description": "After a roll with an overlap: until when the replaced key still works.",
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
            "408": response("body_timeout: the body did not arrive within the time allowed.", ref("MarketoProblem")),
            "409": response("flow_archived: the trigger's flow is archived.", ref("MarketoProblem")),
            "413": response("body_too_large.", ref("MarketoProblem")),
            "422": response(
                "invalid_field: a string holds NUL or the body nests deeper than 64 levels.", ref("MarketoProblem")
            ),
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
        "/v1/{env}/triggers/{triggerId}/api-key/roll": {"parameters": [ENV, MARKETO_TRIGGER], "post": _roll()},
    }


ROLL_DESCRIPTION = """A new API key, shown in full in this answer only. The replaced key stops working at once, or \
after `previousKeyExpiresInSeconds` (up to seven days) to leave time to paste the new key into Marketo; a key \
still in its overlap from an earlier roll stops at once. The service URLs stay the same. docs/marketo.md."""


def _roll() -> dict[str, Any]:
    limit = int(MAX_OVERLAP.total_seconds())
    body = closed(obj({OVERLAP_FIELD: {**INTEGER, "minimum": 0, "maximum": limit, "default": 0}}))
    ok = {
        **responses(200, ref("MarketoTrigger"), "The trigger, with the new apiKey in full.", 401, 404, 422),
        **refusal(409, "not_a_marketo_trigger: only a Marketo trigger has an API key."),
    }
    roll = operation("Roll a Marketo trigger's API key", TAG, ok, description=ROLL_DESCRIPTION, body=body)
    roll["requestBody"]["required"] = False  # no body: no overlap
    return roll
