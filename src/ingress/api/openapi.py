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

from ingress.api import cursors
from ingress.api.known_parameters import EXEMPT, HTTP_METHODS, template
from ingress.api.samples import CAPTURE_SECONDS, MAX_CAPTURE_SECONDS
from ingress.api.triggers import KINDS
from ingress.hooks import CAUSES
from ingress.jsonio import json_response
from mapper.resources import load_schema
from store.event_delivery_log import STATUSES as DELIVERY_STATUSES
from store.triggers import MODES

JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def embedded(name: str, schema: Schema) -> Schema:
    """A `schemas/` file as component `name`, its local references made absolute in this document.

    The files say `{"$ref": "#/$defs/step"}`, which JSON Schema resolves
    against the file's own `$id`. Many OpenAPI tools ignore an embedded `$id`
    and look for `#/$defs/step` at the document's root, where nothing is, so
    the copy drops its `$id` and points at `#/components/schemas/{name}/$defs/step`.
    """

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: f"#/components/schemas/{name}{value[1:]}"
                if key == "$ref" and isinstance(value, str) and value.startswith("#/")
                else rewrite(value)
                for key, value in node.items()
                if key != "$id"
            }
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    rewritten: Schema = rewrite(schema)
    return rewritten


def closed(schema: Schema) -> Schema:
    """A request body whose unknown fields are refused (422 `unknown_field`), as every handler does."""
    return {**schema, "additionalProperties": False}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STRING: Schema = {"type": "string"}
NAME: Schema = {"type": "string", "minLength": 1}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
INTEGER: Schema = {"type": "integer"}
NULLABLE_INTEGER: Schema = {"type": ["integer", "null"]}
TIME: Schema = {"type": "string", "format": "date-time"}
PROBLEM: Schema = obj({"path": STRING, "message": STRING}, ("path", "message"))

Security = list[dict[str, list[str]]]
PUBLIC: Security = []


def record(properties: dict[str, Schema]) -> Schema:
    """An object the API always shows whole: every property is required (what tells `oneOf` branches apart)."""
    return obj(properties, tuple(properties))


def trigger_record(kind: str, own_fields: dict[str, Schema]) -> Schema:
    """A stored trigger of `kind` as `views.trigger_view` shows it: who it is, the kind's own fields, then the
    mode, mapping and times every stored trigger has."""
    return record(
        {
            "id": STRING,
            "environmentId": STRING,
            "flowId": STRING,
            "type": {"const": kind},
            **own_fields,
            "mode": {"enum": list(MODES)},
            "mapping": ref("MappingSpec"),
            "createdAt": TIME,
            "updatedAt": TIME,
        }
    )


def list_of(item: str) -> Schema:
    return obj({"data": {"type": "array", "items": ref(item)}})


def page_of(item: str) -> Schema:
    return obj({"data": {"type": "array", "items": ref(item)}, "nextCursor": NULLABLE_STRING})


def error_body(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """`{"error": {code, message, …}}`: every error answer has this shape, with its own extra fields."""
    return obj(
        {"error": obj({"code": STRING, "message": STRING, **properties}, ("code", "message", *required))},
        ("error",),
    )


def response(description: str, schema: Schema | None = None) -> dict[str, Any]:
    """One response: its description and, when it has a body, the body's JSON schema."""
    found: dict[str, Any] = {"description": description}
    if schema is not None:
        found["content"] = {JSON: {"schema": schema}}
    return found


def refusal(status: int, description: str) -> dict[str, Any]:
    """An error status with what it means for this operation (instead of the shared component's text)."""
    return {str(status): response(description, ref("Error"))}


def responses(success: int, schema: Schema | None, description: str, *errors: int) -> dict[str, Any]:
    """The success response, then each error status as a reference to its shared component."""
    found = {str(success): response(description, schema)}
    for status in errors:
        found[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return found


RETRY_AFTER = {
    "Retry-After": {
        "description": "With store_unavailable: how many seconds to wait before trying again.",
        "schema": INTEGER,
    }
}


def store_failures(answers: dict[str, Any]) -> dict[str, Any]:
    """`answers` with what any operation that reads or writes the store may answer besides (ingress.errors):
    500 internal_error (a bug), and 503 store_unavailable with `Retry-After`. An operation's own 503 (a
    sandbox crash, OAuth's body) keeps its description, which names the store too, and gets the header."""
    own = answers.get("503")
    unavailable = {"$ref": "#/components/responses/Error503"} if own is None else {**own, "headers": RETRY_AFTER}
    return {**answers, "500": answers.get("500", {"$ref": "#/components/responses/Error500"}), "503": unavailable}


def operation(
    summary: str,
    tag: str,
    ok: dict[str, Any],
    *,
    description: str | None = None,
    body: Schema | None = None,
    parameters: list[dict[str, Any]] | None = None,
    security: Security | None = None,
    store: bool = True,
) -> dict[str, Any]:
    """`security` replaces the document's (the admin token); PUBLIC needs none.

    An operation with a JSON body also answers 400 `invalid_json` (not JSON, or not an object); one that
    reads or writes the store (`store`, all but the service's probes) its failures (`store_failures`).
    """
    answers = store_failures(ok) if store else dict(ok)
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": answers}
    if description is not None:
        op["description"] = description
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
        answers.setdefault("400", {"$ref": "#/components/responses/Error400"})
    if parameters:
        op["parameters"] = parameters
    if security is not None:
        op["security"] = security
    return op


def path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STRING, "description": description}


def query_param(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def limit_param(maximum: int, default: int) -> dict[str, Any]:
    return query_param("limit", {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}, "Page size.")


ENV = path_param("env", "Environment id: `default` (exists from the first start) or one made by POST /v1/environments.")
FLOW = path_param("flowId", "Flow id (`flw_…`).")
TRIGGER = path_param(
    "triggerId",
    "Trigger id: `trg_…` (a webhook, event, segment, SFMC or Marketo trigger) or `api_flw_…` (a flow's API trigger).",
)
REQUEST = path_param("requestId", "Request-log id (`req_…`).")
CURSOR = query_param(
    "cursor",
    {**STRING, "pattern": cursors.ALPHABET_PATTERN, "minLength": cursors.SHORTEST},
    "`nextCursor` of the previous page, sent with the same environment, path ids and filters (`limit` may change); "
    "a cursor of another listing, altered, or made by an earlier version is a 400 `invalid_cursor`.",
)


def page_responses(page: Schema, parameters: str) -> dict[str, Any]:
    """A listing's answers: a page, or a 400 for a bad filter (`parameters` names them) or a cursor it did not issue."""
    refused = response(f"invalid_parameter (a bad {parameters}) or invalid_cursor (see `cursor`).", ref("Error"))
    return {**responses(200, page, "A page.", 401, 404), "400": refused}


PAGE = [
    query_param(
        "status", {**STRING, "pattern": "^([0-9]{3}|[1-5][xX]{2})$"}, "An HTTP status (`202`) or a class (`4xx`)."
    ),
    query_param("cause", {"enum": list(CAUSES)}, "Only entries with this cause."),
    query_param("since", TIME, "Only requests received at or after this time (ISO-8601; UTC without a zone)."),
    query_param("until", TIME, "Only requests received at or before this time."),
    limit_param(200, 50),
    CURSOR,
]
LOG_PAGE = page_responses(ref("RequestPage"), "status, cause, since, until or limit")


def versioned(draft: dict[str, Schema]) -> Schema:
    """A flow or a card template as the API shows it: its draft's fields beside its versions."""
    return obj(
        {
            "id": STRING,
            "environmentId": STRING,
            **draft,
            "draftRevision": INTEGER,
            "publishedVersion": NULLABLE_INTEGER,
            "createdAt": TIME,
            "updatedAt": TIME,
        }
    )


def versioned_paths(
    path: str,
    item: dict[str, Any],
    *,
    what: str,
    tag: str,
    schema: str,
    publish_refusal: str | None = None,
    published: Schema | None = None,
    list_parameters: list[dict[str, Any]] | None = None,
    archived_refusal: str | None = None,
) -> dict[str, Any]:
    """Create, list, read, replace the draft, publish: the endpoints flows and card templates share.

    `item` is the id's path parameter; `schema` names the document and
    `{schema}Input` its body, refused whole (every problem) when invalid;
    `publish_refusal` says when a draft cannot be published (a 422);
    `published` is the publish answer when it is more than the document;
    `list_parameters` are the listing's filters; `archived_refusal` is the 409 that replacing the draft and
    publishing answer for an archived document.
    """
    one = f"{path}/{{{item['name']}}}"
    document = ref(schema)
    body = ref(f"{schema}Input")
    invalid = response(f"The {what} has problems: every one, with its path.", ref("Problems"))
    archived = refusal(409, archived_refusal) if archived_refusal else {}
    return {
        path: {
            "parameters": [ENV],
            "post": operation(
                f"Create a {what}", tag, {**responses(201, document, "Created.", 401, 404), "422": invalid}, body=body
            ),
            "get": operation(
                f"List {what}s",
                tag,
                responses(200, list_of(schema), f"{what.capitalize()}s.", 401, 404),
                parameters=list_parameters,
            ),
        },
        one: {
            "parameters": [ENV, item],
            "get": operation(f"Read a {what}", tag, responses(200, document, f"The {what}.", 401, 404)),
            "put": operation(
                "Replace the draft",
                tag,
                {**responses(200, document, "Updated.", 401, 404), "422": invalid, **archived},
                body=body,
            ),
        },
        f"{one}/publish": {
            "parameters": [ENV, item],
            "post": operation(
                "Publish the draft as the next version (live runs use the latest)",
                tag,
                {
                    **responses(200, published or document, "Published.", 401, 404),
                    **({"422": response(publish_refusal, ref("Problems"))} if publish_refusal else {}),
                    **archived,
                },
            ),
        },
    }


TRIGGER_FIELDS: dict[str, Schema] = {
    "mode": {"enum": list(MODES), "default": "test"},
    "mapping": ref("MappingSpec"),
    "verification": {"oneOf": [ref("Verification"), {"type": "null"}]},
    "allowedIps": {"type": "array", "items": STRING, "description": "IPv4/IPv6 addresses and CIDR ranges."},
    "eventName": {**NAME, "maxLength": 128, "description": "Event triggers only: the event name it listens for."},
    "segmentId": {**STRING, "description": "Segment triggers only: an existing segment (else 422 segment_not_found)."},
    "on": {
        "enum": ["entered", "exited"],
        "default": "entered",
        "description": "Segment triggers only: fire when a customer enters the segment or exits it.",
    },
    "signingSecret": ref("SigningSecret"),
}
#: Each trigger kind's schema: `api` (every flow's), then the stored kinds.
TRIGGER_SCHEMAS = {kind: f"{kind.capitalize()}Trigger" for kind in ("api", *KINDS)}
STORED_TRIGGER: Schema = {"oneOf": [ref(TRIGGER_SCHEMAS[kind]) for kind in KINDS]}

COMPONENT_SCHEMAS: dict[str, Schema] = {
    "Error": error_body(
        {
            "requestId": {**STRING, "description": "Webhook requests only: the request-log id."},
            "path": {**STRING, "description": "Where in the submitted JSON the problem is."},
            "errors": {
                "type": "array",
                "items": PROBLEM,
                "description": "A webhook's validation_error: each problem (the first 100).",
            },
            "paths": {"type": "array", "items": STRING, "description": "The same problems' paths alone."},
            "revision": {**INTEGER, "description": "412 precondition_failed: the trigger's current revision."},
        }
    ),
    "Problems": error_body(
        {
            "path": {**STRING, "description": "The first problem's path."},
            "errors": {"type": "array", "items": PROBLEM},
        },
        ("errors",),
    ),
    "Variable": obj(
        {
            "name": NAME,
            "type": {"enum": ["string", "number", "boolean", "object"]},
            "default": {},
            "required": {"type": "boolean"},
        },
        ("name",),
    ),
    "Flow": versioned(
        {
            "name": STRING,
            "variables": {"type": "array", "items": ref("Variable")},
            "steps": {"type": "array"},
            "archived": {"type": "boolean", "description": "Archived: it starts nothing new (`POST …/archive`)."},
            "archivedAt": {"type": ["string", "null"], "format": "date-time"},
        }
    ),
    "TriggerInput": closed(
        obj(
            {
                "type": {
                    "enum": [*KINDS, "api"],
                    "default": "webhook",
                    "description": "`event` needs `eventName` and takes no `verification` or `allowedIps` (422); "
                    "`segment` needs `segmentId` (docs/customers.md); `sfmc` needs `signingSecret` (docs/sfmc.md); "
                    "`marketo` takes `mode` and `mapping` only, its API key is made and shown once (docs/marketo.md); "
                    "`api` is refused (409 api_trigger_exists): every flow has its API trigger.",
                },
                **TRIGGER_FIELDS,
                "mapping": {
                    **ref("MappingSpec"),
                    "description": "Default: passthrough for a webhook trigger; for an event trigger "
                    '`{"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId", '
                    '"variables": "body.properties"}}` (the mapped request\'s body is the event); for a segment '
                    'trigger `{"kind": "jmespath", "fields": {"targetUserIds": "body.endUserId"}}`; for an sfmc '
                    'trigger `{"kind": "jmespath", "fields": {"targetUserIds": "body.arguments.userId", '
                    '"variables": "body.arguments"}}` (docs/sfmc.md).',
                },
            }
        )
    ),
    "TriggerPatch": closed(obj(TRIGGER_FIELDS)),
    "Trigger": {
        "oneOf": [ref(name) for name in TRIGGER_SCHEMAS.values()],
        "discriminator": {
            "propertyName": "type",
            "mapping": {kind: ref(name)["$ref"] for kind, name in TRIGGER_SCHEMAS.items()},
        },
    },
    "ApiTrigger": record(
        {
            "id": {**STRING, "description": "`api_` + the flow id: it never changes."},
            "environmentId": STRING,
            "flowId": STRING,
            "type": {"const": "api"},
            "startUrl": {**STRING, "description": "Runs the published flow (an access token with the events role)."},
            "testUrl": {**STRING, "description": "Runs the draft, for test users only."},
            "tokenUrl": {**STRING, "description": "Where a credential gets its access token."},
            "createdAt": {**TIME, "description": "The flow's: the API trigger comes with it."},
        }
    ),
    "WebhookTrigger": trigger_record(
        "webhook",
        {
            "hookId": STRING,
            "url": {**STRING, "description": "Where the sender posts: `<base>/hooks/{hookId}`."},
            "verification": {"type": ["object", "null"], "description": "The config with every secret masked."},
            "allowedIps": {"type": "array", "items": STRING},
            "captureArmed": {"type": "boolean"},
            "captureExpiresAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When an armed capture lapses (then the trigger is no longer armed); null if not armed.",
            },
        },
    ),
    "EventTrigger": trigger_record(
        "event", {"eventName": {**STRING, "description": "Events of this name sent to POST /v1/{env}/events fire it."}}
    ),
    "Delivery": record(
        {
            "id": STRING,
            "eventId": {**STRING, "description": "The event (an analytics event id)."},
            "hop": {**INTEGER, "description": "1 for an event sent to the API; a flow's event: its run's hop + 1."},
            "status": {"enum": list(DELIVERY_STATUSES)},
            "cause": {
                **NULLABLE_STRING,
                "description": "Why it was skipped or failed; for a pending one, its last attempt's transient failure.",
            },
            "detail": {"type": ["object", "null"], "description": "What the mapping gave: output, errors, logs."},
            "invocationId": NULLABLE_STRING,
            "flowInvocationId": NULLABLE_STRING,
            "attempts": {**INTEGER, "description": "How many times the event dispatcher has tried it."},
            "nextAttemptAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "A pending one's next attempt (a retry after a transient failure, or its first); "
                "null once settled.",
            },
            "createdAt": TIME,
            "updatedAt": TIME,
        }
    ),
    "DeliveryPage": page_of("Delivery"),
    "RawRequest": closed(
        obj(
            {
                "method": {"enum": ["POST", "PUT"], "default": "POST"},
                "path": {"type": "string", "pattern": "^/"},
                "headers": {"type": "object", "additionalProperties": STRING},
                "query": {"type": ["string", "object"]},
                "contentType": STRING,
                "body": {"description": "The raw body text, or any JSON value (then sent as application/json)."},
            }
        )
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
    "PreviewInput": closed(
        obj(
            {
                "mapping": ref("MappingSpec"),
                "request": ref("RawRequest"),
                "sampleId": STRING,
                "variables": {
                    "type": "array",
                    "items": ref("Variable"),
                    "description": "The flow variables to apply, given here (instead of a flow's).",
                },
                "flowId": {
                    **STRING,
                    "description": "Apply this flow's variables: its draft's, unless `variablesOf` says `published`.",
                },
                "triggerId": {
                    **STRING,
                    "description": "Preview for this trigger: apply its flow's variables as its requests do, the "
                    "published version's for a live trigger (the draft's while the flow was never published), the "
                    "draft's for a test or disabled one; its signature headers are secrets the answer never echoes, "
                    "like the secret-bearing headers and query parameters of `request`. "
                    "`flowId`, if given as well, must be its flow (422).",
                },
                "variablesOf": {
                    "enum": ["draft", "published"],
                    "description": "Whose variables of the flow (`flowId` or the trigger's) to apply, whatever the "
                    "trigger's mode; `published` of a flow never published is a 409 flow_not_published.",
                },
            },
            ("mapping",),
        )
    ),
    "Preview": {
        "allOf": [
            ref("MappingResult"),
            obj(
                {
                    "variablesOf": {
                        "enum": ["draft", "published", "given", None],
                        "description": "Whose flow variables were applied: the draft's, the published version's, "
                        "the body's own `variables`, or none (null).",
                    },
                    "mapped": {
                        "type": ["object", "null"],
                        "description": "The output as the mapping returned it, before the flow variables' defaults "
                        "filled it in (`output`); a variable it left out is missing here. Null when the mapping threw "
                        "or returned null.",
                    },
                },
                ("variablesOf", "mapped"),
            ),
        ]
    },
    "MappingResult": obj(
        {
            "ok": {"type": "boolean"},
            "skipped": {"type": "boolean"},
            "output": {
                "description": "What the mapping returned: a TriggerRequest when `ok`, otherwise any JSON "
                "value, kept as returned (null when it failed or skipped)."
            },
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
    "RequestPage": page_of("RequestSummary"),
    "Readiness": obj(
        {
            "ready": {"type": "boolean"},
            "checks": obj({name: {"enum": ["ok", "failing"]} for name in ("store", "writer", "sandbox")}),
        },
        ("ready", "checks"),
    ),
    "BulkReplayItem": obj(
        {
            "requestId": {**STRING, "description": "The replay's log entry (absent when skipped)."},
            "replayOf": STRING,
            "status": INTEGER,
            "cause": {"enum": list(CAUSES)},
            "skipped": {"enum": ["replay_not_allowed"], "description": "Not replayed (see `message`)."},
            "message": STRING,
        },
        ("replayOf",),
    ),
    "BulkReplayPage": page_of("BulkReplayItem"),
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

UNKNOWN_PARAMETER = "unknown_parameter: a query parameter the operation does not list"
ERROR_STATUSES = {
    400: f"Bad request (invalid JSON, parameter or body); {UNKNOWN_PARAMETER} (webhooks, what SFMC and Marketo "
    "call, the token endpoint and the probes take any).",
    401: "Missing or wrong admin token; for webhooks: signature_invalid / timestamp_out_of_tolerance.",
    403: "trigger_disabled / ip_not_allowed.",
    404: "Not found (hook, environment, flow, trigger, sample, request).",
    405: "method_not_allowed: the path does not take this method (see the Allow header).",
    408: "body_timeout: the body did not arrive within the time allowed.",
    409: "idempotency_conflict / flow_archived / flow_not_published / replay_not_allowed / api_trigger_exists / "
    "api_trigger_not_editable / api_trigger_required / not_a_webhook_trigger.",
    412: "precondition_failed: the trigger changed since the revision If-Match names (`revision` and the ETag "
    "header give the current one).",
    413: "Body too large.",
    415: "Unsupported content type.",
    422: "Invalid input (with `path`), mapping_error or validation_error.",
    431: "headers_too_large: the URL and headers of a webhook exceed the server's limit.",
    500: "internal_error: flowhook failed on this request (a bug, logged); a webhook was not accepted.",
    503: "store_unavailable: the store cannot be reached now, and nothing was acknowledged; retry after "
    "`Retry-After` seconds.",
}

WEBHOOK_ERRORS = (400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 431)

WEBHOOK_DESCRIPTION = """The webhook endpoint: no admin token; the hookId in the URL is the credential, \
optionally with an IP allowlist and a signature check. Checks run in this order, each failure answered with \
its status and recorded in the request log: 431 headers_too_large, 405 method_not_allowed (any method but POST \
and PUT), 404 hook_not_found, 403 trigger_disabled, \
403 ip_not_allowed, 413 body_too_large, 408 body_timeout, 415 unsupported_media_type, 401 signature_invalid, \
401 timestamp_out_of_tolerance, (armed capture: 202 {captured: true}), 400 invalid_body, 200 skipped, \
422 mapping_error, 422 validation_error, 409 idempotency_conflict, 409 flow_archived, 409 flow_not_published, \
202 accepted (sent after the invocation is committed). A sender that hangs up before its body is complete \
is logged as 499 client_disconnected, a failure of flowhook's own as 500 internal_error. A repeat with the \
same flowInvocationId and payload gets the original 202 body and `Idempotent-Replayed: true`."""


REPLAY_DESCRIPTION = """Runs a logged request again through the trigger's current mode, mapping and flow, and logs \
it as a new request (`replayOf`). The answer is always 200: `status`, `cause` and `response` are what the \
pipeline answered the replayed request. Without `Idempotency-Key` every replay is new: when the mapping gives \
no flowInvocationId a fresh one is generated, so calling replay twice starts the flow twice. With the header, \
the flowInvocationId (when the mapping gives none) is derived from the request id and the key, so repeating the \
call with the same key answers `duplicate` with the first replay's response and starts nothing; if the \
trigger's mapping changed in between, the payload differs and the replay answers 409 idempotency_conflict. \
A flowInvocationId the mapping gives is used as always. 400 invalid_idempotency_key: the header is empty, \
longer than 255 characters, not printable ASCII, or sent more than once."""

BULK_REPLAY_DESCRIPTION = """Replays, one after the other and in the order they arrived, the page of the requests the \
trigger refused (4xx, 5xx) that `status`, `cause`, `since` and `until` select (replays, \
and requests a replay already recovered with a 2xx, are left out; at most 100 a call): \
recovery after a mapping was fixed or a flow published. Accepted, duplicate, captured \
and skipped requests are never taken (replay one alone); a filter that can select only \
those, an unknown query parameter, or a body (the filters go in the query string) is a \
400. Each runs as POST /requests/{requestId}/replay would, and its item says what the \
pipeline answered it; a request that cannot be replayed (it failed the IP or signature \
check, or its body was truncated) is skipped, not an error. `nextCursor` continues with \
the next page, in the same order. With `Idempotency-Key`, each request's replay is \
idempotent as a single replay's is: a retried call under the same key starts nothing \
new. 409 not_a_webhook_trigger: an API, event or segment trigger has no request log."""

REPLAY_IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "description": "Makes retrying this replay safe: the same request and key start the flow at most once.",
}


ETAG = {
    "ETag": {
        "description": 'The trigger\'s revision, `"3"`: send it back as `If-Match` to change this revision only.',
        "schema": STRING,
    }
}

IF_MATCH: dict[str, Any] = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": STRING,
    "description": 'Apply the change only to this revision (the ETag of a read, `"3"`; several may be listed, '
    '`*` is any): else 412 precondition_failed with the current revision. Weak tags (`W/"3"`) never match; '
    "a value that is not entity tags is a 400 invalid_if_match. Without it the change applies to whatever "
    "revision is current.",
}

PATCH_DESCRIPTION = """Optimistic concurrency: every answer showing one stored trigger (create, read, change) \
carries its revision as a strong `ETag`. Sent back as `If-Match`, it makes the change apply only while the \
trigger is still at that revision; a change made meanwhile (by another admin, the editor in another tab, \
arming or firing capture) is answered 412 precondition_failed with the current revision, before the body is \
checked, and nothing is changed."""


def with_etag(responses: dict[str, Any], status: int) -> dict[str, Any]:
    """`responses` with the `ETag` header on the `status` answer."""
    return {**responses, str(status): {**responses[str(status)], "headers": ETAG}}


def refusing_unknown_parameters(paths: dict[str, Any]) -> dict[str, Any]:
    """`paths` with a 400 on each operation of a route that refuses a query parameter it does not list (all
    but the EXEMPT ones, ingress.api.known_parameters): the shared one, which names it, or the operation's
    own with it added. Here once rather than in each operation, so that none can leave it out."""
    found = dict(paths)
    for path, item in paths.items():
        if template(path) not in EXEMPT:
            found[path] = {key: _refusing_unknown(op) if key in HTTP_METHODS else op for key, op in item.items()}
    return found


def _refusing_unknown(op: dict[str, Any]) -> dict[str, Any]:
    refused = op["responses"].get("400", {"$ref": "#/components/responses/Error400"})
    if "$ref" not in refused and UNKNOWN_PARAMETER not in refused["description"]:
        refused = {**refused, "description": f"{refused['description']} Also {UNKNOWN_PARAMETER}."}
    return {**op, "responses": {**op["responses"], "400": refused}}


def _paths() -> dict[str, Any]:
    captured = obj({"captured": {"const": True}, "requestId": STRING, "sampleId": STRING}, ("captured", "requestId"))
    accepted = {"oneOf": [ref("Accepted"), captured]}
    webhook_ok = responses(202, accepted, "Accepted (stored durably) or captured as a sample.", *WEBHOOK_ERRORS)
    webhook_ok["200"] = response(
        "The mapping skipped this request (returned null).", obj({"skipped": {"const": True}, "requestId": STRING})
    )
    webhook_ok["503"] = response(
        "store_unavailable (retry after `Retry-After` seconds) or sandbox_crashed (the mapping sandbox crashed): "
        "not accepted; retry later.",
        ref("Error"),
    )
    webhook = operation(
        "Deliver a webhook",
        "webhooks",
        webhook_ok,
        description=WEBHOOK_DESCRIPTION,
        security=PUBLIC,
        parameters=[path_param("hookId", "The secret part of the trigger's URL.")],
    )
    webhook["requestBody"] = {
        "description": (
            "Any JSON (`application/json`, `application/*+json`), form (`application/x-www-form-urlencoded`), text"
            " (`text/*`) or XML (`application/xml`, `*+xml`) body, in UTF-8 or the declared standard charset; a"
            " body without a Content-Type is read as text. Anything else, or a Content-Encoding, is a 415."
        ),
        "content": {media: {} for media in (JSON, "application/x-www-form-urlencoded", "text/*", "application/xml")},
    }
    exposition = responses(
        200,
        None,
        "The text exposition; while the store does not answer, with `flowhook_store_up 0` and no backlog.",
        401,
        500,  # the backlog read failing for a bug of flowhook's, not the store's
    )
    exposition["200"]["content"] = {"text/plain": {"schema": STRING}}
    no_hook = refusal(
        409, "not_a_webhook_trigger: an API, event or segment trigger has no hook to capture or paste samples for."
    )
    armed = obj(
        {
            "triggerId": STRING,
            "armed": {"type": "boolean"},
            "expiresAt": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the capture lapses unarmed if no request came; null when disarmed.",
            },
            "mode": {
                "enum": list(MODES),
                "description": "The trigger's: armed on a live one, the next production request is captured "
                "instead of starting the flow.",
            },
        }
    )
    arm = operation(
        "Arm capture: the next request becomes a sample and starts nothing",
        "samples",
        {**responses(200, armed, "Armed.", 401, 404, 422), **no_hook},
        description=f"""The capture lapses after `expiresInSeconds` (default {CAPTURE_SECONDS}, at most \
{MAX_CAPTURE_SECONDS}) if no request came: the trigger is then no longer armed and its requests run as usual. \
Arming again restarts the wait.""",
        body=closed(
            obj(
                {
                    "expiresInSeconds": {
                        **INTEGER,
                        "minimum": 1,
                        "maximum": MAX_CAPTURE_SECONDS,
                        "default": CAPTURE_SECONDS,
                    }
                }
            )
        ),
    )
    arm["requestBody"]["required"] = False  # no body: the default wait
    return {
        "/hooks/{hookId}": {"post": webhook, "put": webhook},
        "/healthz": {
            "get": operation(
                "Liveness",
                "service",
                responses(200, obj({"ok": {"type": "boolean"}}), "Up."),
                security=PUBLIC,
                store=False,
            )
        },
        "/openapi.json": {
            "get": operation(
                "This description",
                "service",
                responses(200, {"type": "object"}, "OpenAPI"),
                security=PUBLIC,
                store=False,
            )
        },
        "/readyz": {
            "get": operation(
                "Readiness: the store answers, the writer runs, a sandbox worker is up (docs/operations.md)",
                "service",
                {
                    **responses(200, ref("Readiness"), "Ready."),
                    "503": response("Not ready: `checks` names what fails.", ref("Readiness")),
                },
                security=PUBLIC,
                store=False,
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics: webhook answers and latency, the backlog (docs/operations.md)",
                "service",
                exposition,
                store=False,  # a store that does not answer is `flowhook_store_up 0`, not a 503
            )
        },
        **versioned_paths(
            "/v1/{env}/action-flows",
            FLOW,
            what="flow",
            tag="flows",
            schema="Flow",
            publish_refusal="flow_not_publishable: a send-card step names a card template with no published "
            "version; every such step, with its path.",
            published=ref("PublishedFlow"),
            list_parameters=[
                query_param("archived", {"enum": ["true", "false"]}, "`true`: the archived flows (left out otherwise).")
            ],
            archived_refusal="flow_archived: the flow is archived; unarchive it first.",
        ),
        "/v1/{env}/action-flows/{flowId}/triggers": {
            "parameters": [ENV, FLOW],
            "post": operation(
                "Create a webhook, event or segment trigger",
                "triggers",
                {
                    **with_etag(
                        responses(201, STORED_TRIGGER, "Created (mode test unless given).", 401, 404, 422), 201
                    ),
                    **refusal(
                        409,
                        "api_trigger_exists: `type: api`; every flow already has its API trigger. flow_archived: "
                        "the flow is archived (unarchive it first).",
                    ),
                },
                body=ref("TriggerInput"),
            ),
            "get": operation(
                "List the flow's triggers: its API trigger first, then its webhook, event and segment triggers, "
                "oldest first",
                "triggers",
                responses(200, list_of("Trigger"), "Triggers.", 401, 404),
            ),
        },
        "/v1/{env}/triggers": {
            "parameters": [ENV],
            "get": operation(
                "List the environment's triggers, its flows' API triggers among them, newest first",
                "triggers",
                page_responses(page_of("Trigger"), "type, mode or limit"),
                description="Ordered by `createdAt`, then `id`, both descending (an API trigger's `createdAt` is its "
                "flow's). Each trigger is as its flow's listing shows it, secrets masked. A 404 `flow_not_found` "
                "for a `flowId` the environment does not have.",
                parameters=[
                    query_param("type", {"enum": list(TRIGGER_SCHEMAS)}, "Only triggers of this type."),
                    query_param("mode", {"enum": list(MODES)}, "Only triggers in this mode (API triggers have none)."),
                    query_param("flowId", NAME, "Only this flow's triggers."),
                    limit_param(200, 50),
                    CURSOR,
                ],
            ),
        },
        "/v1/{env}/triggers/{triggerId}": {
            "parameters": [ENV, TRIGGER],
            "get": operation(
                "Read a trigger",
                "triggers",
                with_etag(responses(200, ref("Trigger"), "The trigger (an API trigger has no ETag).", 401, 404), 200),
            ),
            "patch": operation(
                "Change a trigger's mode and mapping; a webhook trigger's verification or allowedIps; an event "
                "trigger's eventName; a segment trigger's segmentId or on",
                "triggers",
                {
                    **with_etag(responses(200, STORED_TRIGGER, "Updated.", 401, 404, 412, 422), 200),
                    **refusal(409, "api_trigger_not_editable: an API trigger has nothing to change."),
                    "400": response("invalid_json, or invalid_if_match: If-Match is not entity tags.", ref("Error")),
                },
                description=PATCH_DESCRIPTION,
                body=ref("TriggerPatch"),
                parameters=[IF_MATCH],
            ),
            "delete": operation(
                "Delete a webhook, event or segment trigger with its samples, log and deliveries",
                "triggers",
                {
                    **responses(204, None, "Deleted.", 401, 404),
                    **refusal(409, "api_trigger_required: a flow's API trigger cannot be removed."),
                },
            ),
        },
        "/v1/{env}/triggers/{triggerId}/capture": {
            "parameters": [ENV, TRIGGER],
            "post": arm,
            "delete": operation(
                "Disarm capture",
                "samples",
                {**responses(200, armed, "Disarmed.", 401, 404), **no_hook},
            ),
        },
        "/v1/{env}/triggers/{triggerId}/samples": {
            "parameters": [ENV, TRIGGER],
            "get": operation(
                "List samples, newest first (an API or event trigger has none)",
                "samples",
                responses(200, list_of("Sample"), "Samples.", 401, 404),
            ),
            "post": operation(
                "Paste a sample",
                "samples",
                {
                    **responses(201, ref("Sample"), "Saved.", 401, 404, 413, 415, 422, 431),
                    "400": response(
                        "invalid_json, or invalid_body: the body does not parse as its content type says (at "
                        "`$.body`), as the hook would refuse it.",
                        ref("Error"),
                    ),
                    **no_hook,
                },
                body=ref("RawRequest"),
            ),
        },
        "/v1/{env}/triggers/{triggerId}/samples/{sampleId}": {
            "parameters": [ENV, TRIGGER, path_param("sampleId", "Sample id (`smp_…`).")],
            "delete": operation(
                "Delete a sample",
                "samples",
                responses(204, None, "Deleted.", 401, 404),
            ),
        },
        "/v1/{env}/mappings/preview": {
            "parameters": [ENV],
            "post": operation(
                "Run a mapping on a request or sample",
                "samples",
                {
                    **responses(200, ref("Preview"), "The result (ok or not).", 400, 401, 404, 413, 415, 422, 431),
                    **refusal(409, "flow_not_published: `variablesOf: published` of a flow never published."),
                },
                body=ref("PreviewInput"),
            ),
        },
        "/v1/{env}/triggers/{triggerId}/requests": {
            "parameters": [ENV, TRIGGER],
            "get": operation(
                "The trigger's request log, newest first (empty for an API or event trigger: it has no hook)",
                "requests",
                LOG_PAGE,
                parameters=PAGE,
            ),
        },
        "/v1/{env}/triggers/{triggerId}/requests/replay": {
            "parameters": [ENV, TRIGGER],
            "post": operation(
                "Replay a page of the requests the trigger refused, oldest first",
                "requests",
                {
                    **page_responses(ref("BulkReplayPage"), "status, cause, since, until or limit"),
                    **refusal(409, "not_a_webhook_trigger: an API, event or segment trigger has no request log."),
                },
                description=BULK_REPLAY_DESCRIPTION,
                parameters=[*PAGE[:4], limit_param(100, 50), CURSOR, REPLAY_IDEMPOTENCY_KEY],
            ),
        },
        "/v1/{env}/triggers/{triggerId}/deliveries": {
            "parameters": [ENV, TRIGGER],
            "get": operation(
                "An event or segment trigger's deliveries, newest first: what each event it was sent became (empty for "
                "other triggers)",
                "events",
                page_responses(ref("DeliveryPage"), "status or limit"),
                parameters=[
                    query_param("status", {"enum": list(DELIVERY_STATUSES)}, "Only deliveries in this status."),
                    limit_param(200, 50),
                    CURSOR,
                ],
            ),
        },
        "/v1/{env}/requests": {
            "parameters": [ENV],
            "get": operation(
                "The environment's request log (and requests to unknown hooks)",
                "requests",
                LOG_PAGE,
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
                responses(200, ref("Replay"), "The replay's outcome.", 400, 401, 404, 409),
                description=REPLAY_DESCRIPTION,
                parameters=[REPLAY_IDEMPOTENCY_KEY],
            ),
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    from ingress.api import openapi_api_triggers as api_triggers  # noqa: PLC0415 - it builds on this module
    from ingress.api import openapi_bulk_starts as bulk_starts  # noqa: PLC0415 - it builds on this module
    from ingress.api import openapi_customers as customers  # noqa: PLC0415 - it builds on this module
    from ingress.api import openapi_environments as environments  # noqa: PLC0415 - it builds on this module
    from ingress.api import openapi_flow_archive as flow_archive  # noqa: PLC0415 - it builds on this module
    from ingress.api import openapi_marketo as marketo  # noqa: PLC0415 - it builds on this module
    from ingress.api import openapi_send_test as send_test  # noqa: PLC0415 - it builds on this module
    from ingress.api import openapi_sfmc as sfmc  # noqa: PLC0415 - it builds on this module
    from ingress.api import openapi_test_data as test_data  # noqa: PLC0415 - it builds on this module
    from ingress.api.openapi_flows import FLOW_SCHEMAS, flow_paths  # noqa: PLC0415 - it builds on this module

    schemas = {
        **COMPONENT_SCHEMAS,
        **FLOW_SCHEMAS,
        "MappingSpec": load_schema("mapping"),
        "Verification": load_schema("verification"),
        "TriggerRequest": load_schema("trigger-request"),
        **api_triggers.SCHEMAS,
        **environments.SCHEMAS,
        **bulk_starts.SCHEMAS,
        **customers.SCHEMAS,
        **sfmc.SCHEMAS,
        **marketo.SCHEMAS,
        **send_test.SCHEMAS,
        **test_data.SCHEMAS,
    }
    schemas = {name: embedded(name, schema) if "$id" in schema else schema for name, schema in schemas.items()}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flowhook",
            "version": "1",
            "description": "Webhook ingress and management API. See docs/webhooks.md.",
        },
        "security": [{"adminToken": []}],
        "paths": refusing_unknown_parameters(
            {
                **_paths(),
                **environments.environment_paths(),
                **flow_paths(),
                **flow_archive.archive_paths(),
                **api_triggers.api_trigger_paths(),
                **bulk_starts.bulk_start_paths(),
                **customers.customer_paths(),
                **sfmc.sfmc_paths(),
                **marketo.marketo_paths(),
                **send_test.send_test_paths(),
                **test_data.test_data_paths(),
            }
        ),
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
                **{f"Error{status}": response(text, ref("Error")) for status, text in ERROR_STATUSES.items()},
                "Error503": {**response(ERROR_STATUSES[503], ref("Error")), "headers": RETRY_AFTER},
            },
        },
    }


async def openapi_endpoint(request: Request) -> Response:
    return json_response(openapi_document())
