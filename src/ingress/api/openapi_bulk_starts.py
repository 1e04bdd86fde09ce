"""The OpenAPI description of bulk starts (CSV tasks, manual starts, progress); `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from flows.csv_rows import MAX_ROWS
from ingress.api.bulk_starts import MAX_CSV_BYTES, MAX_MANUAL
from ingress.api.openapi import (
    ENV,
    FLOW,
    INTEGER,
    PROBLEM,
    STRING,
    TIME,
    Schema,
    Security,
    closed,
    error_body,
    obj,
    operation,
    path_param,
    ref,
    response,
)
from ingress.api.openapi_api_triggers import OAUTH_SECURITY
from store.bulk_tasks import KINDS

TAG = "bulk-starts"
TASK = path_param("taskId", "Bulk task id (`bulk_…`).")
EITHER_TOKEN: Security = [{"adminToken": []}, *OAUTH_SECURITY]
CONDITION: Schema = closed(
    obj(
        {
            "attribute": {**STRING, "minLength": 1, "description": "A profile attribute's name."},
            "op": {"const": "eq", "default": "eq"},
            "value": {
                "type": ["string", "number", "boolean"],
                "description": "Compared as text (docs/bulk-starts.md).",
            },
        },
        ("attribute", "value"),
    )
)

SCHEMAS: dict[str, Schema] = {
    "BulkTaskCreated": obj(
        {"id": STRING, "status": {"const": "pending"}, "total": {**INTEGER, "description": "Rows (or customers)."}},
        ("id", "status", "total"),
    ),
    "BulkTask": obj(
        {
            "id": STRING,
            "kind": {"enum": list(KINDS)},
            "flowId": {**STRING, "description": "The flow of the path (a test sender row may name another)."},
            "status": {"enum": ["pending", "running", "done", "failed"]},
            "total": INTEGER,
            "processed": {**INTEGER, "description": "Rows decided so far: started or skipped."},
            "started": {**INTEGER, "description": "Invocations accepted."},
            "skipped": {
                "type": "array",
                "description": "Every skipped row, in order: `row` (CSV, the header is row 1) or `userId` (manual).",
                "items": obj({"row": INTEGER, "userId": STRING, "reason": STRING}, ("reason",)),
            },
            "createdAt": TIME,
            "updatedAt": TIME,
        },
        ("id", "kind", "flowId", "status", "total", "processed", "started", "skipped", "createdAt", "updatedAt"),
    ),
    "ManualStart": closed(
        obj(
            {
                "userIds": {"type": "array", "items": {**STRING, "minLength": 1}, "minItems": 1},
                "segmentId": STRING,
                "filter": {
                    "oneOf": [CONDITION, {"type": "array", "items": CONDITION, "minItems": 1}],
                    "description": "One condition, or several that must all hold.",
                },
                "variables": {"type": "object"},
                "cardOptions": {"type": "object"},
                "metadata": {"type": "object"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_MANUAL, "default": MAX_MANUAL},
            }
        )
    ),
    "CsvProblems": error_body({"errors": {"type": "array", "items": PROBLEM}}, ("errors",)),
}


def _problem(description: str) -> dict[str, Any]:
    return response(description, ref("ApiProblem"))


def _csv_operation(summary: str, description: str) -> dict[str, Any]:
    op = operation(
        summary,
        TAG,
        {
            "202": response("The task is stored; its progress is at the `Location`.", ref("BulkTaskCreated")),
            "400": _problem("invalid_parameter: NUL in the path."),
            "401": _problem("No access token, or one unknown, expired or revoked (the admin token is refused)."),
            "403": _problem("environment_mismatch or insufficient_scope (no `events` role)."),
            "404": _problem("flow_not_found."),
            "408": _problem("body_timeout."),
            "409": _problem("flow_not_published (the live route)."),
            "413": _problem(f"body_too_large: the file exceeds {MAX_CSV_BYTES} bytes."),
            "415": _problem("unsupported_media_type: send the file as `text/csv`."),
            "422": response(
                f"invalid_csv: every problem with the file (not UTF-8, not CSV, a header that cannot work, no rows, "
                f"more than {MAX_ROWS} rows); nothing stored.",
                ref("CsvProblems"),
            ),
        },
        description=description,
        security=OAUTH_SECURITY,
    )
    op["requestBody"] = {"required": True, "content": {"text/csv": {"schema": STRING}}}
    return op


def bulk_start_paths() -> dict[str, Any]:
    return {
        "/v1/{env}/action-flow/{flowId}/csv-task": {
            "parameters": [ENV, FLOW],
            "post": _csv_operation(
                "Start the published flow for each row of a CSV file",
                "Columns: `target.attributes.<field>` (all must match; a row matching no customer or more than 10 "
                "is skipped), `payload.variables.X`, `payload.metadata.X`, `payload.notificationDetail.X`, "
                "`payload.cardOptions.X`, `flowInvocationId`. The rows are started in the background; every "
                "skipped row is listed with its reason. See docs/bulk-starts.md.",
            ),
        },
        "/v1/{env}/action-flow/{flowId}/csv-task/test": {
            "parameters": [ENV, FLOW],
            "post": _csv_operation(
                "Test sender: run drafts for test users from a CSV file",
                "As csv-task, on drafts, reaching test users only; also takes `flowConfigId` (the row's flow, "
                "default the path's) and `payload.target.usersById` (user ids separated by `|`).",
            ),
        },
        "/v1/{env}/action-flows/{flowId}/manual-starts": {
            "parameters": [ENV, FLOW],
            "post": operation(
                "Start the published flow for selected existing customers",
                TAG,
                {
                    "202": response("The task is stored; its progress is at the `Location`.", ref("BulkTaskCreated")),
                    "401": {"$ref": "#/components/responses/Error401"},
                    "404": response("flow_not_found, segment_not_found or environment_not_found.", ref("Error")),
                    "409": response("flow_not_published.", ref("Error")),
                    "422": response(
                        "invalid_field / unknown_field (with `path`), validation_error (the variables, with every "
                        "problem) or selection_over_limit (with `selected` and `limit`).",
                        ref("ApiProblem"),
                    ),
                },
                description=(
                    "Exactly one of `userIds`, `segmentId` (its members now) or `filter`. Live runs; a user without "
                    "a customer profile is skipped with its reason. A selection larger than `limit` is refused."
                ),
                body=ref("ManualStart"),
            ),
        },
        "/v1/{env}/bulk-tasks/{taskId}": {
            "parameters": [ENV, TASK],
            "get": operation(
                "A bulk task's progress",
                TAG,
                {
                    "200": response("The task.", ref("BulkTask")),
                    "401": _problem("No admin token or access token."),
                    "403": _problem("environment_mismatch or insufficient_scope."),
                    "404": _problem("bulk_task_not_found."),
                },
                security=EITHER_TOKEN,
            ),
        },
    }
