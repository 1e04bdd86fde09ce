"""The OpenAPI description of the flow run-time endpoints; `ingress.api.openapi` merges it in.

Card templates, cards and their actions, analytics events, test users,
environment settings and invocation status. The flow and card template
bodies are the files in `schemas/` themselves.
"""

from __future__ import annotations

from typing import Any

from ingress.api.openapi import (
    ENV,
    FLOW,
    INTEGER,
    JSON,
    NULLABLE_STRING,
    STRING,
    TIME,
    Schema,
    obj,
    operation,
    path_param,
    query_param,
    ref,
    responses,
)
from mapper.resources import load_schema
from store.analytics import FLOW_EVENTS
from store.cards import ACTIONS, STATUSES
from store.environment_settings import CHOICES
from store.flow_instances import STATUSES as INSTANCE_STATUSES
from store.test_users import KINDS

SOURCE: Schema = {"enum": ["live", "test"]}
OBJECT: Schema = {"type": "object"}
TEMPLATE = path_param("templateId", "Card template id (`ctp_…`).")
CARD = path_param("cardInstanceId", "Card instance id (`crd_…`).")
USER = path_param("userId", "The end user's id.")
CURSOR = query_param("cursor", STRING, "`nextCursor` of the previous page.")


def page_of(item: str) -> Schema:
    return obj({"data": {"type": "array", "items": ref(item)}, "nextCursor": NULLABLE_STRING})


def list_of(item: str) -> Schema:
    return obj({"data": {"type": "array", "items": ref(item)}})


FLOW_SCHEMAS: dict[str, Schema] = {
    "FlowInput": load_schema("flow"),
    "CardTemplateInput": load_schema("card-template"),
    "Problems": obj(
        {
            "error": obj(
                {
                    "code": STRING,
                    "message": STRING,
                    "path": {**STRING, "description": "The first problem's path."},
                    "errors": {"type": "array", "items": obj({"path": STRING, "message": STRING})},
                },
                ("code", "message", "errors"),
            )
        },
        ("error",),
    ),
    "CardTemplate": obj(
        {
            "id": STRING,
            "environmentId": STRING,
            "name": STRING,
            "description": STRING,
            "definition": OBJECT,
            "draftRevision": INTEGER,
            "publishedVersion": {"type": ["integer", "null"]},
            "createdAt": TIME,
            "updatedAt": TIME,
        }
    ),
    "Card": obj(
        {
            "cardInstanceId": STRING,
            "cardTemplateId": STRING,
            "templateVersion": {"type": ["integer", "null"], "description": "null: the draft (test runs)."},
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
            "expiresAt": {"type": ["string", "null"], "format": "date-time"},
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
    "TestUserInput": obj(
        {"userId": STRING, "name": STRING, "kind": {"enum": list(KINDS), "default": "external"}}, ("userId",)
    ),
    "TestUser": obj({"userId": STRING, "kind": {"enum": list(KINDS)}, "name": NULLABLE_STRING, "createdAt": TIME}),
    "Settings": obj({name: {"enum": list(allowed), "default": allowed[0]} for name, allowed in CHOICES.items()}),
    "FlowInstance": obj(
        {
            "flowInstanceId": STRING,
            "userId": STRING,
            "status": {"enum": list(INSTANCE_STATUSES)},
            "eventSource": SOURCE,
            "flowVersion": {"type": ["integer", "null"]},
            "outcomes": {
                **OBJECT,
                "description": "Per wait step: {outcome: card-completed|card-dismissed|timeout|no-card}.",
            },
            "dueAt": {"type": ["string", "null"], "format": "date-time"},
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
            "flowVersion": {"type": ["integer", "null"]},
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


def _invalid(what: str) -> dict[str, Any]:
    return {
        "description": f"The {what} has problems: every one, with its path.",
        "content": {JSON: {"schema": ref("Problems")}},
    }


def flow_paths() -> dict[str, Any]:
    template_ok = responses(201, ref("CardTemplate"), "Created.", 401, 404)
    template_ok["422"] = _invalid("card template")
    template_put = responses(200, ref("CardTemplate"), "Updated.", 401, 404)
    template_put["422"] = _invalid("card template")
    return {
        "/v1/{env}/card-templates": {
            "parameters": [ENV],
            "post": operation("Create a card template", "card templates", template_ok, body=ref("CardTemplateInput")),
            "get": operation(
                "List card templates", "card templates", responses(200, list_of("CardTemplate"), "Templates.", 401, 404)
            ),
        },
        "/v1/{env}/card-templates/{templateId}": {
            "parameters": [ENV, TEMPLATE],
            "get": operation(
                "Read a card template", "card templates", responses(200, ref("CardTemplate"), "It.", 401, 404)
            ),
            "put": operation("Replace the draft", "card templates", template_put, body=ref("CardTemplateInput")),
            "delete": operation(
                "Delete a template (sent cards keep their copy)",
                "card templates",
                responses(204, None, "Deleted.", 401, 404),
            ),
        },
        "/v1/{env}/card-templates/{templateId}/publish": {
            "parameters": [ENV, TEMPLATE],
            "post": operation(
                "Publish the draft as the next version (live runs use the latest)",
                "card templates",
                responses(200, ref("CardTemplate"), "Published.", 401, 404),
            ),
        },
        "/v1/{env}/users/{userId}/cards": {
            "parameters": [ENV, USER],
            "get": operation(
                "A user's cards, newest first",
                "cards",
                responses(200, page_of("Card"), "A page.", 400, 401, 404),
                parameters=[
                    query_param("eventSource", SOURCE, "Only live or only test cards."),
                    query_param("status", {"enum": list(STATUSES)}, "Only cards with this status."),
                    query_param(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}, "Page size."
                    ),
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
                body=obj({"action": {"enum": list(ACTIONS)}}, ("action",)),
            ),
        },
        "/v1/{env}/analytics/events": {
            "parameters": [ENV],
            "get": operation(
                "Analytics events, oldest first (test events only if testAnalytics is include)",
                "analytics",
                responses(200, page_of("AnalyticsEvent"), "A page.", 400, 401, 404),
                parameters=[
                    query_param("flowId", STRING, "Only this flow's events."),
                    query_param("eventName", STRING, "e.g. card-published."),
                    query_param("eventSource", SOURCE, "Only live or only test events."),
                    query_param("userId", STRING, "Only this end user's events."),
                    query_param("since", TIME, "Only events at or after this time."),
                    query_param(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "Page size."
                    ),
                    CURSOR,
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
                responses(200, ref("Invocation"), "It.", 401, 404),
            ),
        },
    }
