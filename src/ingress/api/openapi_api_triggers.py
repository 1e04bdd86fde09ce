"""The OpenAPI description of the OAuth2 token endpoint, the Credentials API, the Action Flow API and the
events API.

Merged into `/openapi.json` by ingress.api.openapi. The start request body
is `schemas/action-flow-start.schema.json` itself, the events body
`schemas/events.schema.json`.
"""

from __future__ import annotations

from typing import Any

from ingress.access_tokens import ROLES
from ingress.api.openapi import (
    ENV,
    FLOW,
    INTEGER,
    NAME,
    PROBLEM,
    PUBLIC,
    STRING,
    TIME,
    Schema,
    closed,
    error_body,
    list_of,
    obj,
    operation,
    path_param,
    ref,
    response,
    responses,
)
from ingress.errors import MAX_LISTED_PROBLEMS
from mapper.resources import load_schema

FORM = "application/x-www-form-urlencoded"
OAUTH_SECURITY = [{"oauth2": ["events"]}]
CREDENTIAL = path_param("clientId", "The credential's client id (`fh_ci_…`).")

SECURITY_SCHEMES: dict[str, Any] = {
    "oauth2": {
        "type": "oauth2",
        "description": "Access tokens for the Action Flow API, from a credential of the same environment.",
        "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": dict(ROLES)}},
    }
}

ROLE: Schema = {"enum": list(ROLES)}

SCHEMAS: dict[str, Schema] = {
    "ActionFlowStart": load_schema("action-flow-start"),
    "ActionFlowStarted": obj(
        {
            "mode": {"enum": ["live", "test"]},
            "flows": {
                "type": "array",
                "description": "One per entry of the request, in its order.",
                "items": obj(
                    {
                        "flowInvocationId": {**STRING, "description": "The entry's, or a generated UUID."},
                        "targetedUserIds": {
                            "type": "array",
                            "items": STRING,
                            "description": "Each user once, in the order given (a repeated id is started once); "
                            "for `usersByAttribute`, the customers matched, oldest profile first (a repeat: those "
                            "the original matched).",
                        },
                        "ignoredUserIds": {
                            "type": "array",
                            "items": STRING,
                            "description": "/test only: users who are not test users (each once); they get nothing.",
                        },
                    },
                    ("flowInvocationId", "targetedUserIds", "ignoredUserIds"),
                ),
            },
        },
        ("mode", "flows"),
    ),
    "Events": load_schema("events"),
    "EventsAccepted": obj(
        {
            "events": {
                "type": "array",
                "description": "One per event sent, in its order.",
                "items": obj(
                    {
                        "id": {**STRING, "description": "The stored event's id (analytics events show it)."},
                        "deliveries": {
                            **INTEGER,
                            "description": "How many event triggers it fired (a repeat: the original's).",
                        },
                        "duplicate": {
                            "type": "boolean",
                            "description": "An event with this `id` was stored before: nothing new was stored.",
                        },
                    },
                    ("id", "deliveries", "duplicate"),
                ),
            }
        },
        ("events",),
    ),
    "ApiProblem": error_body(
        {
            "errors": {
                "type": "array",
                "items": PROBLEM,
                "description": f"Each problem and its path; a 422 lists the first {MAX_LISTED_PROBLEMS}, counting all. "
                "A `usersByAttribute` that matches no customer or more than 10 also has a `code`: `no_match`, "
                "`too_many_matches`.",
            },
            "path": {**STRING, "description": "invalid_field: where in the body the problem is."},
        }
    ),
    "CredentialInput": closed(
        obj(
            {
                "name": {**NAME, "maxLength": 200},
                "roles": {"type": "array", "items": ROLE, "minItems": 1, "uniqueItems": True},
            },
            ("name", "roles"),
        )
    ),
    "Credential": obj(
        {
            "clientId": STRING,
            "environmentId": STRING,
            "name": STRING,
            "roles": {"type": "array", "items": ROLE},
            "createdAt": TIME,
        },
        ("clientId", "environmentId", "name", "roles", "createdAt"),
    ),
    "TokenResponse": obj(
        {
            "access_token": STRING,
            "token_type": {"const": "Bearer"},
            "expires_in": {**INTEGER, "description": "Seconds (3600 by default)."},
            "scope": {**STRING, "description": "The roles granted, space-separated."},
        },
        ("access_token", "token_type", "expires_in"),
    ),
    "OAuthError": obj(
        {
            "error": {
                "enum": [
                    "invalid_request",
                    "invalid_client",
                    "unsupported_grant_type",
                    "invalid_scope",
                    "temporarily_unavailable",
                ]
            },
            "error_description": STRING,
        },
        ("error",),
    ),
}


def problem(description: str) -> dict[str, Any]:
    """A refusal of the token-authenticated APIs (Action Flow, events, bulk starts): an ApiProblem body."""
    return response(description, ref("ApiProblem"))


def _token_operation() -> dict[str, Any]:
    op = operation(
        "Get an access token (OAuth2 client credentials)",
        "oauth",
        {
            "200": response("A token; `Cache-Control: no-store`.", ref("TokenResponse")),
            "400": response(
                "invalid_request, unsupported_grant_type or invalid_scope (RFC 6749 §5.2).", ref("OAuthError")
            ),
            "401": response("invalid_client, with `WWW-Authenticate: Basic`.", ref("OAuthError")),
            "429": response(
                "temporarily_unavailable: too many failed client authentications for this client id or from this "
                "address, alike whether the id exists; `Retry-After` says when to try again (docs/api-triggers.md).",
                ref("OAuthError"),
            ),
            "503": response(
                "temporarily_unavailable: the store cannot be reached now (store_unavailable elsewhere); retry after "
                "`Retry-After` seconds.",
                ref("OAuthError"),
            ),
        },
        description=(
            "RFC 6749 §4.4. Authenticate the client with HTTP Basic (client id and secret) or with the "
            "`client_id` and `client_secret` form fields, not both. `scope` (space-separated roles) narrows the "
            "token to some of the credential's roles; all of them when absent."
        ),
        security=PUBLIC,
    )
    form = obj(
        {"grant_type": {"const": "client_credentials"}, "scope": STRING, "client_id": STRING, "client_secret": STRING},
        ("grant_type",),
    )
    op["requestBody"] = {"required": True, "content": {FORM: {"schema": form}}}
    return op


def _start_operation(summary: str, description: str) -> dict[str, Any]:
    return operation(
        summary,
        "action-flow",
        {
            "202": response(
                "Stored durably (or a repeat answered as before, with `Idempotent-Replayed: true`).",
                ref("ActionFlowStarted"),
            ),
            "400": problem("invalid_json (the body is not a JSON object) or invalid_parameter (NUL in the path)."),
            "401": problem("No access token, or one unknown, expired or revoked (the admin token is refused)."),
            "403": problem(
                "environment_mismatch (a token of another environment) or insufficient_scope (no `events` role)."
            ),
            "404": problem("flow_not_found."),
            "408": problem("body_timeout: the body did not arrive within the time allowed."),
            "409": problem(
                "idempotency_conflict (with the entries' paths), flow_archived or flow_not_published; nothing stored."
            ),
            "413": problem("Body too large."),
            "422": problem(
                "validation_error: every problem in the body with its path (an entry by attribute that matches no "
                "customer, or more than 10, is one); or invalid_field: a string holding NUL or nesting deeper than "
                "64 levels, with its path. Nothing stored."
            ),
        },
        description=description,
        body=ref("ActionFlowStart"),
        security=OAUTH_SECURITY,
    )


def _events_operation(test: bool = False) -> dict[str, Any]:
    summary = (
        "Send test events: stored as eventSource test, they start only test runs and count for no segment"
        if test
        else "Send custom events: event triggers listening for their names start their flows"
    )
    return operation(
        summary,
        "events",
        {
            "202": response(
                "Stored durably with the deliveries they fired (or a repeat of stored ones, answered as before, "
                "with `Idempotent-Replayed: true` when every event is one).",
                ref("EventsAccepted"),
            ),
            "400": problem("invalid_json (the body is not a JSON object) or invalid_parameter (NUL in the path)."),
            "401": problem("No access token, or one unknown, expired or revoked (the admin token is refused)."),
            "403": problem(
                "environment_mismatch (a token of another environment) or insufficient_scope (no `events` role)."
            ),
            "408": problem("body_timeout: the body did not arrive within the time allowed."),
            "409": problem("idempotency_conflict: an `id` already stored with another event (paths); nothing stored."),
            "413": problem("Body too large."),
            "422": problem(
                "validation_error: every problem with its path (the first as `path`); reserved_event_name when the "
                "only problems are names flows and segments emit; invalid_field: a string holding NUL or nesting "
                "deeper than 64 levels. Nothing stored."
            ),
        },
        description=(
            'One event, or `{"events": [...]}` with 1 to 100. Each is stored as a live analytics event; '
            "every event trigger of the environment listening for its name (and not disabled) gets a delivery, "
            "which the event dispatcher maps into a flow invocation (see the trigger's deliveries). An `id` makes "
            "retries safe: an event sent again with the same id is stored and fires its triggers once. "
            "See docs/events.md."
        ),
        body=ref("Events"),
        security=OAUTH_SECURITY,
    )


def api_trigger_paths() -> dict[str, Any]:
    created = {
        "allOf": [
            ref("Credential"),
            obj(
                {
                    "clientSecret": {**STRING, "description": "Shown in this answer only; stored hashed."},
                    "tokenUrl": STRING,
                },
                ("clientSecret", "tokenUrl"),
            ),
        ]
    }
    return {
        "/oauth/token": {"post": _token_operation()},
        "/v1/{env}/credentials": {
            "parameters": [ENV],
            "post": operation(
                "Create an API credential",
                "credentials",
                responses(201, created, "Created; the secret is shown this once.", 401, 404, 422),
                body=ref("CredentialInput"),
            ),
            "get": operation(
                "List API credentials (never their secrets)",
                "credentials",
                responses(200, list_of("Credential"), "Credentials.", 401, 404),
            ),
        },
        "/v1/{env}/credentials/{clientId}": {
            "parameters": [ENV, CREDENTIAL],
            "get": operation("Read a credential", "credentials", responses(200, ref("Credential"), "It.", 401, 404)),
            "delete": operation(
                "Revoke a credential: its tokens stop working at once in this process, within"
                " FLOWHOOK_CONFIG_CACHE_SECONDS in other workers",
                "credentials",
                responses(204, None, "Revoked.", 401, 404),
            ),
        },
        "/v1/{env}/events": {"parameters": [ENV], "post": _events_operation()},
        "/v1/{env}/events/test": {"parameters": [ENV], "post": _events_operation(test=True)},
        "/v1/{env}/action-flow/{flowId}/start": {
            "parameters": [ENV, FLOW],
            "post": _start_operation(
                "Start the published flow",
                "One entry per group of users sharing a payload, named by id (`usersById`) or by customer "
                "attributes (`usersByAttribute`, matched when the request is answered: 1 to 10 customers). "
                "Required variables and types follow the published flow's declarations. A given flowInvocationId "
                "is idempotent per flow and mode (a key used by /test is a new key for /start); a repeat by "
                "attribute is compared by its attributes, not by whom they match now.",
            ),
        },
        "/v1/{env}/action-flow/{flowId}/test": {
            "parameters": [ENV, FLOW],
            "post": _start_operation(
                "Test the draft flow with test users",
                "As /start, on the draft flow; users who are not test users are listed in ignoredUserIds "
                "and receive nothing.",
            ),
        },
    }
