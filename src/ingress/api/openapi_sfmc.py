"""The OpenAPI description of SFMC triggers (Journey Builder custom activities); `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from ingress.api.openapi import (
    PUBLIC,
    STRING,
    Schema,
    error_body,
    obj,
    operation,
    path_param,
    ref,
    response,
    trigger_record,
)
from ingress.api.triggers import MIN_SIGNING_SECRET
from ingress.sfmc import LIFECYCLE

TAG = "sfmc"
KEY = path_param("key", "The SFMC trigger's hookId: the secret part of its activity's URLs.")
# Journey Builder sends no token (PUBLIC): the key and the JWT signature are the credentials.
JWT_BODY = {
    "required": True,
    "content": {
        "application/jwt": {
            "schema": {
                **STRING,
                "description": "A compact JWT signed with HS256 and the installed package's signing secret.",
            }
        }
    },
}

SCHEMAS: dict[str, Schema] = {
    "SfmcTrigger": trigger_record(
        "sfmc",
        {
            "hookId": STRING,
            "endpointUrl": {**STRING, "description": "The custom activity's endpoint URL, for the installed package."},
            "configUrl": {**STRING, "description": "`<endpointUrl>/config.json`, which Journey Builder loads."},
            "signingSecret": {**STRING, "description": "Masked: `••••` and at most its last 4 characters."},
        },
    ),
    "SigningSecret": {
        **STRING,
        "minLength": MIN_SIGNING_SECRET,
        "description": "SFMC triggers only (required): the installed package's JWT signing secret.",
    },
    "SfmcExecuted": {
        **obj(
            {
                "flowInvocationId": {
                    **STRING,
                    "description": "The mapping's, else `sfmc:` + the call's activityInstanceId (docs/sfmc.md).",
                },
                "mode": {"enum": ["test", "live"]},
                "skipped": {"const": True},
            }
        ),
        "description": "`{flowInvocationId, mode}`, or `{skipped: true}` when the mapping returned null.",
    },
    "SfmcProblem": error_body({"errors": {"type": "array", "items": {"type": "object"}}}),
}


def _refused(description: str) -> dict[str, Any]:
    return response(description, ref("SfmcProblem"))


def _signed(summary: str, description: str, ok: dict[str, Any], *extra: tuple[str, str]) -> dict[str, Any]:
    errors = {
        "401": _refused("signature_invalid: the body is not a JWT signed (HS256) with the signing secret."),
        "403": _refused("trigger_disabled."),
        "404": _refused("activity_not_found: no SFMC trigger has this key."),
        **{status: _refused(text) for status, text in extra},
    }
    op = operation(summary, TAG, {**ok, **errors}, description=description, parameters=[KEY], security=PUBLIC)
    op["requestBody"] = JWT_BODY
    return op


def sfmc_paths() -> dict[str, Any]:
    lifecycle = {
        f"/sfmc/{{key}}/{name}": {
            "post": _signed(
                f"Journey Builder's {name} call",
                "Verified, then answered `{}`: flowhook keeps nothing per journey.",
                {"200": response("Verified.", {"type": "object"})},
            )
        }
        for name in LIFECYCLE
    }
    return {
        "/sfmc/{key}/config.json": {
            "get": operation(
                "The custom activity's config.json",
                TAG,
                {
                    "200": response("Workflow API 1.1, type REST, every URL JWT-signed.", {"type": "object"}),
                    "403": _refused("trigger_disabled."),
                    "404": _refused("activity_not_found."),
                },
                parameters=[KEY],
                security=PUBLIC,
            )
        },
        "/sfmc/{key}/execute": {
            "post": _signed(
                "A contact reached the activity: start the flow for it",
                "The trigger's mapping runs on the decoded JWT as the request's JSON body, with `body.arguments` "
                "holding its inArguments merged; the invocation is stored before the answer. Retries of the same "
                "pass start nothing new. See docs/sfmc.md.",
                {"200": response("Stored (or a repeat, answered as before).", ref("SfmcExecuted"))},
                ("408", "body_timeout."),
                ("409", "idempotency_conflict, flow_archived, or flow_not_published (a live trigger)."),
                ("413", "body_too_large."),
                ("422", "mapping_error or validation_error (with `errors`), or invalid_field."),
                ("503", "sandbox_crashed or store_unavailable (with `Retry-After`): Journey Builder retries."),
            )
        },
        **lifecycle,
    }
