"""The OpenAPI description of the flow run-time endpoints; `ingress.api.openapi` merges it in.

Card templates, cards and their actions, analytics events, test users,
environment settings and invocation status. The flow and card template
bodies are the files in `schemas/` themselves.
"""

from __future__ import annotations

from typing import Any

from ingress.api.openapi import (
    CURSOR,
    ENV,
    FLOW,
    INTEGER,
    NAME,
    NULLABLE_INTEGER,
    NULLABLE_STRING,
    STRING,
    TIME,
    Schema,
    closed,
    limit_param,
    list_of,
    obj,
    operation,
    page_of,
    page_responses,
    path_param,
    query_param,
    ref,
    response,
    responses,
    versioned,
    versioned_paths,
)
from mapper.resources import load_schema
from store.analytics import FLOW_EVENTS
from store.cards import ACTIONS, STATUSES
from store.environment_settings import CHOICES
from store.flow_instances import STATUSES as INSTANCE_STATUSES
from store.test_users import KINDS

SOURCE: Schema = {"enum": ["live", "test"]}
OBJECT: Schema = {"type": "object"}
NULLABLE_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
TEMPLATE = path_param("templateId", "Card template id (`ctp_…`).")
CARD = path_param("cardInstanceId", "Card instance id (`crd_…`).")
USER = path_param("userId", "The end user's id.")
EVENT_FILTERS = [
    query_param("flowId", NAME, "Only this flow's events."),
    query_param("eventName", NAME, "e.g. card-published."),
    query_param("eventSource", SOURCE, "Only live or only test events."),
    query_param("userId", NAME, "Only this end user's events."),
    query_param("since", TIME, "Only events whose timestamp is at or after this time."),
    query_param("until", TIME, "Only events whose timestamp is at or before this time."),
]
RECORDED_ORDER = (
    "Events come in the order they were recorded, not by `timestamp`: an event may be sent with a time in the "
    "past, and a reader that went forward by time would already have passed it (docs/flows.md, Analytics)."
)

FLOW_SCHEMAS: dict[str, Schema] = {
    "FlowInput": load_schema("flow"),
    "CardTemplateInput": load_schema("card-template"),
    "CardTemplate": versioned({"name": STRING, "description": STRING, "definition": OBJECT}),
    "Card": obj(
        {
            "cardInstanceId": STRING,
            "cardTemplateId": STRING,
            "templateVersion": {**NULLABLE_INTEGER, "description": "null: the draft (test runs)."},
            "flowConfigId": STRING,
            "flowInstanceId": STRING,
            "flowInvocationId": STRING,
            "stepId": STRING,
            "userId": STRING,
            "eventSource": SOURCE,
            "status": {"enum": list(STATUSES)},
            "definition": {**OBJECT, "description": "The template with its placeholders filled."},
            "payload": obj(
                {"variables": OBJECT, "cardOptions": OBJECT, "metadata": OBJECT, "notificationDetail": OBJECT}
            ),
            "expiresAt": NULLABLE_TIME,
            "created": TIME,
            "updated": TIME,
        }
    ),
    "AnalyticsEvent": obj(
        {
            "id": STRING,
            "eventName": {**STRING, "examples": list(FLOW_EVENTS)},
            "timestamp": TIME,
            "environmentId": STRING,
            "endUserId": NULLABLE_STRING,
            "flowConfigId": NULLABLE_STRING,
            "flowInstanceId": NULLABLE_STRING,
            "flowInvocationId": NULLABLE_STRING,
            "cardInstanceId": NULLABLE_STRING,
            "eventSource": SOURCE,
            "properties": OBJECT,
            "metadata": OBJECT,
        }
    ),
    "TestUserInput": closed(
        obj({"userId": NAME, "name": NAME, "kind": {"enum": list(KINDS), "default": "external"}}, ("userId",))
    ),
    "TestUser": obj({"userId": STRING, "kind": {"enum": list(KINDS)}, "name": NULLABLE_STRING, "createdAt": TIME}),
    "Settings": closed(
        obj({name: {"enum": list(allowed), "default": allowed[0]} for name, allowed in CHOICES.items()})
    ),
    "FlowInstance": obj(
        {
            "flowInstanceId": STRING,
            "userId": STRING,
            "status": {"enum": list(INSTANCE_STATUSES)},
            "eventSource": SOURCE,
            "flowVersion": NULLABLE_INTEGER,
            "outcomes": {
                **OBJECT,
                "description": "Per wait step: {outcome: card-completed|card-dismissed|timeout|no-card}.",
            },
            "dueAt": NULLABLE_TIME,
            "waitingCardId": NULLABLE_STRING,
            "attempts": INTEGER,
            "lastError": NULLABLE_STRING,
            "createdAt": TIME,
            "updatedAt": TIME,
        }
    ),
    "Invocation": obj(
        {
            "flowInvocationId": STRING,
            "flowConfigId": STRING,
            "mode": SOURCE,
            "flowVersion": NULLABLE_INTEGER,
            "status": {"enum": ["pending", "done", "failed"], "description": "done: expanded into instances."},
            "triggerId": NULLABLE_STRING,
            "requestId": NULLABLE_STRING,
            "createdAt": TIME,
            "targetedUserIds": {"type": "array", "items": STRING},
            "ignoredUserIds": {"type": "array", "items": STRING, "description": "Test runs: not test users."},
            "instances": {"type": "array", "items": ref("FlowInstance")},
        }
    ),
}


def flow_paths() -> dict[str, Any]:
    templates = versioned_paths(
        "/v1/{env}/card-templates", TEMPLATE, what="card template", tag="card templates", schema="CardTemplate"
    )
    templates["/v1/{env}/card-templates/{templateId}"]["delete"] = operation(
        "Delete a template (sent cards keep their copy); 409 card_template_in_use while a flow sends it",
        "card templates",
        responses(204, None, "Deleted.", 401, 404, 409),
    )
    return {
        **templates,
        "/v1/{env}/users/{userId}/cards": {
            "parameters": [ENV, USER],
            "get": operation(
                "A user's cards, newest first",
                "cards",
                page_responses(page_of("Card"), "eventSource, status or limit"),
                parameters=[
                    query_param("eventSource", SOURCE, "Only live or only test cards."),
                    query_param("status", {"enum": list(STATUSES)}, "Only cards with this status."),
                    limit_param(200, 50),
                    CURSOR,
                ],
            ),
        },
        "/v1/{env}/cards/{cardInstanceId}": {
            "parameters": [ENV, CARD],
            "get": operation("Read a card", "cards", responses(200, ref("Card"), "It.", 401, 404)),
        },
        "/v1/{env}/cards/{cardInstanceId}/actions": {
            "parameters": [ENV, CARD],
            "post": operation(
                "Complete or dismiss a card: records card-completed/card-dismissed and releases waits on it",
                "cards",
                responses(200, ref("Card"), "Done.", 401, 404, 409, 422),
                body=closed(obj({"action": {"enum": list(ACTIONS)}}, ("action",))),
            ),
        },
        "/v1/{env}/analytics/events": {
            "parameters": [ENV],
            "get": operation(
                "Analytics events in the order recorded (test events only if testAnalytics is include)",
                "analytics",
                page_responses(page_of("AnalyticsEvent"), "eventSource, since, until or limit"),
                description=RECORDED_ORDER,
                parameters=[*EVENT_FILTERS, limit_param(1000, 100), CURSOR],
            ),
        },
        "/v1/{env}/analytics/events/export": {
            "parameters": [ENV],
            "get": operation(
                "Every analytics event the filters select, streamed as one NDJSON (or CSV) file",
                "analytics",
                {
                    "200": {
                        "description": "The events in the order recorded, up to the last one recorded when the "
                        "export started; read a page at a time, so any number of them streams.",
                        "content": {
                            "application/x-ndjson": {
                                "schema": {**STRING, "description": "One AnalyticsEvent as JSON per line."}
                            },
                            "text/csv": {
                                "schema": {
                                    **STRING,
                                    "description": "A header row, then a row per event (RFC 4180): the "
                                    "AnalyticsEvent fields, properties and metadata as JSON text, null empty.",
                                }
                            },
                        },
                    },
                    "400": response("invalid_parameter: a bad eventSource, since, until or format.", ref("Error")),
                    "401": {"$ref": "#/components/responses/Error401"},
                    "404": {"$ref": "#/components/responses/Error404"},
                },
                description=RECORDED_ORDER,
                parameters=[
                    *EVENT_FILTERS,
                    query_param("format", {"enum": ["ndjson", "csv"], "default": "ndjson"}, "The file's format."),
                ],
            ),
        },
        "/v1/{env}/test-users": {
            "parameters": [ENV],
            "post": operation(
                "Add a test user (external, or a workbench member)",
                "test users",
                responses(201, ref("TestUser"), "Added.", 401, 404, 409, 422),
                body=ref("TestUserInput"),
            ),
            "get": operation(
                "List test users", "test users", responses(200, list_of("TestUser"), "Test users.", 401, 404)
            ),
        },
        "/v1/{env}/test-users/{userId}": {
            "parameters": [ENV, USER],
            "delete": operation("Remove a test user", "test users", responses(204, None, "Removed.", 401, 404)),
        },
        "/v1/{env}/settings": {
            "parameters": [ENV],
            "get": operation(
                "The environment's settings", "settings", responses(200, ref("Settings"), "Settings.", 401, 404)
            ),
            "patch": operation(
                "Change settings",
                "settings",
                responses(200, ref("Settings"), "Updated.", 401, 404, 422),
                body=ref("Settings"),
            ),
        },
        "/v1/{env}/action-flows/{flowId}/invocations/{flowInvocationId}": {
            "parameters": [ENV, FLOW, path_param("flowInvocationId", "The trigger request's idempotency key.")],
            "get": operation(
                "What became of one trigger request: targeted and ignored users, each flow instance",
                "flows",
                responses(200, ref("Invocation"), "It.", 400, 401, 404),
                parameters=[
                    query_param(
                        "mode", SOURCE, "Keys are per mode: the test or the live invocation (default: live if any)."
                    )
                ],
            ),
        },
    }
