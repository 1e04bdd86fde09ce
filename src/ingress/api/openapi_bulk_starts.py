"""The OpenAPI description of bulk starts (CSV tasks, manual starts, progress); `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from flows.csv_rows import MAX_ROWS
from ingress.api.bulk_starts import MAX_CSV_BYTES, MAX_MANUAL, MAX_SKIPPED_PAGE
from ingress.api.openapi import (
    CURSOR,
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
    limit_param,
    obj,
    operation,
    page_of,
    path_param,
    ref,
    response,
)
from ingress.api.openapi_api_triggers import OAUTH_SECURITY, problem
from mapper.resources import load_schema
from store.bulk_tasks import KINDS, MAX_IGNORED_LISTED

TAG = "bulk-starts"
TASK = path_param("taskId", "Bulk task id (`bulk_…`).")
EITHER_TOKEN: Security = [{"adminToken": []}, *OAUTH_SECURITY]
#: A manual start's filter condition is a segment rule's attribute condition: the same operators and bounds.
_SEGMENT_CONDITION = load_schema("segment")["$defs"]["attributeCondition"]
CONDITION: Schema = closed(
    obj(
        {
            "attribute": _SEGMENT_CONDITION["properties"]["attribute"],
            "op": {
                "enum": _SEGMENT_CONDITION["properties"]["op"]["enum"],
                "default": "eq",
                "description": "A segment rule's operator (docs/customers.md); any other is a 422 listing these.",
            },
            "value": {
                "description": "A string, number or boolean for eq, ne and contains; a list of 1 to 100 of them for "
                "in; a number or string for gt, gte, lt and lte; true (the default) or false for exists. Compared as "
                'segment rules do: 1 equals 1.0, not "1" or true (docs/bulk-starts.md).',
            },
        },
        ("attribute",),
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
                "description": "Every skipped row, in order (`…/skipped` pages through them).",
                "items": ref("SkippedRow"),
            },
            "ignored": {
                "type": "array",
                "description": "Test sender (`csv-test`) tasks only: each started row that named users who are not "
                "test users, in row order. They receive nothing, as `/test` answers `ignoredUserIds`; the row still "
                "counts as started (its invocation exists). Rows that ignored nobody are not listed.",
                "items": ref("IgnoredRow"),
            },
            "createdAt": TIME,
            "updatedAt": TIME,
        },
        ("id", "kind", "flowId", "status", "total", "processed", "started", "skipped", "createdAt", "updatedAt"),
    ),
    "SkippedRow": obj(
        {
            "row": {**INTEGER, "description": "A CSV task's row (the header is row 1)."},
            "userId": {**STRING, "description": "A manual start's user."},
            "lead": {**INTEGER, "description": "A Marketo task's lead: its place in the batch, from 1."},
            "leadId": {"description": "A Marketo task's lead: its id, as Marketo sent it."},
            "flowInvocationId": {**STRING, "description": "A Marketo lead's invocation key, once it had one."},
            "code": {
                **STRING,
                "description": "Why, for programs: stable whatever `reason` says. `no_match`, `too_many_matches`, "
                "`wrong_cell_count`, `no_users`, `key_too_long`, `invalid_variable`, `flow_not_found`, "
                "`validation_error`, `no_customer_profile`, `already_started`, `idempotency_conflict`, "
                "`flow_archived`, `flow_not_published`, `trigger_deleted`, and for Marketo leads `invalid_lead`, "
                "`mapping_error`, `mapping_skipped`, `trigger_disabled`; later versions may add codes "
                "(docs/bulk-starts.md).",
            },
            "reason": {**STRING, "description": "Why, in words."},
        },
        ("code", "reason"),
    ),
    "IgnoredRow": obj(
        {
            "row": {**INTEGER, "description": "The CSV row (the header is row 1)."},
            "userIds": {
                "type": "array",
                "items": STRING,
                "maxItems": MAX_IGNORED_LISTED,
                "description": f"The users it ignored, in the row's order: the first {MAX_IGNORED_LISTED}.",
            },
            "count": {**INTEGER, "description": "How many users it ignored, all of them."},
        },
        ("row", "userIds", "count"),
    ),
    "SkippedPage": page_of("SkippedRow"),
    "ManualStart": closed(
        obj(
            {
                "userIds": {"type": "array", "items": {**STRING, "minLength": 1}, "minItems": 1},
                "segmentId": STRING,
                "filter": {
                    "oneOf": [CONDITION, {"type": "array", "items": CONDITION, "minItems": 1}],
                    "description": "One condition, or several that must all hold.",
                },
                "existingMembersOf": {
                    **STRING,
                    "description": "A live segment trigger of the flow on `entered`: its segment's existing "
                    "members, however many (what publishing offers, docs/customers.md).",
                },
                "variables": {"type": "object"},
                "cardOptions": {"type": "object"},
                "metadata": {"type": "object"},
                "limit": {
                    "type": "integer",
                    "minimum": 1,
                    "description": f"At most {MAX_MANUAL} (the default), except with `existingMembersOf`: any, "
                    "and no default.",
                },
                "dryRun": {
                    "type": "boolean",
                    "default": False,
                    "description": "true: check the body and count the selection, answering 200 `ManualStartDryRun`; "
                    "nothing is stored or started.",
                },
            }
        )
    ),
    "ManualStartDryRun": obj(
        {
            "selected": {**INTEGER, "description": "How many customers the start would select now."},
            "limit": {"type": ["integer", "null"], "description": "The start's limit (null: none)."},
            "exceedsLimit": {
                "type": "boolean",
                "description": "The start would be refused: 422 selection_over_limit.",
            },
        },
        ("selected", "limit", "exceedsLimit"),
    ),
    "CsvProblems": error_body({"errors": {"type": "array", "items": PROBLEM}}, ("errors",)),
}


def _csv_operation(summary: str, description: str) -> dict[str, Any]:
    op = operation(
        summary,
        TAG,
        {
            "202": response("The task is stored; its progress is at the `Location`.", ref("BulkTaskCreated")),
            "400": problem(
                "invalid_parameter: NUL in the path; a form: invalid_form (not multipart/form-data that can be "
                "read) or one_file_required (no file part, or several)."
            ),
            "401": problem("No access token, or one unknown, expired or revoked (the admin token is refused)."),
            "403": problem("environment_mismatch or insufficient_scope (no `events` role)."),
            "404": problem("flow_not_found."),
            "408": problem("body_timeout."),
            "409": problem("flow_archived, or flow_not_published (the live route)."),
            "413": problem(f"body_too_large: the file exceeds {MAX_CSV_BYTES} bytes."),
            "415": problem("unsupported_media_type: send the file as `text/csv`, or as a form's file."),
            "422": response(
                f"invalid_csv: every problem with the file (not UTF-8, not CSV, a header that cannot work, no rows, "
                f"more than {MAX_ROWS} rows); nothing stored.",
                ref("CsvProblems"),
            ),
        },
        description=description,
        security=OAUTH_SECURITY,
    )
    op["requestBody"] = {
        "required": True,
        "description": "The file (UTF-8, a BOM allowed): the body itself, or the one file part of a form, whatever "
        "its field name and content type; other form fields are ignored.",
        "content": {
            "text/csv": {"schema": STRING},
            "multipart/form-data": {
                "schema": obj({"file": {**STRING, "format": "binary", "description": "The CSV file."}}, ("file",)),
                "encoding": {"file": {"contentType": "text/csv, application/csv, application/vnd.ms-excel"}},
            },
        },
    }
    return op


def _task_responses(ok: dict[str, Any]) -> dict[str, Any]:
    """A read of a task: the admin token, or an access token of the environment with the `events` role."""
    return {
        **ok,
        "401": problem("No admin token or access token."),
        "403": problem("environment_mismatch or insufficient_scope."),
        "404": problem("bulk_task_not_found."),
    }


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
                "As csv-task, on drafts, reaching test users only: the task's `ignored` lists, per started row, "
                "the users who are not test users (as `/test` answers `ignoredUserIds`). Also takes `flowConfigId` "
                "(the row's flow, default the path's) and `payload.target.usersById` (user ids separated by `|`).",
            ),
        },
        "/v1/{env}/action-flows/{flowId}/manual-starts": {
            "parameters": [ENV, FLOW],
            "post": operation(
                "Start the published flow for selected existing customers",
                TAG,
                {
                    "200": response(
                        "`dryRun`: how many customers the start would select, against its limit; nothing stored.",
                        ref("ManualStartDryRun"),
                    ),
                    "202": response("The task is stored; its progress is at the `Location`.", ref("BulkTaskCreated")),
                    "401": {"$ref": "#/components/responses/Error401"},
                    "404": response(
                        "flow_not_found, segment_not_found, trigger_not_found or environment_not_found.", ref("Error")
                    ),
                    "409": response(
                        "flow_archived, flow_not_published, or trigger_not_live (`existingMembersOf` names a trigger "
                        "in test mode or disabled).",
                        ref("Error"),
                    ),
                    "422": response(
                        "invalid_field / unknown_field (with `path`; an invalid filter lists every problem in "
                        "`errors`), validation_error (the variables, with every problem) or selection_over_limit "
                        "(with `selected` and `limit`; not for a dry run, which answers 200).",
                        ref("ApiProblem"),
                    ),
                },
                description=(
                    "Exactly one of `userIds`, `segmentId` (its members now), `filter` or `existingMembersOf` (a "
                    "segment trigger's existing members: who was in its segment before it took effect). Live runs; "
                    "a user without a customer profile is skipped with its reason. A selection larger than `limit` "
                    "is refused. `filter` conditions are segment rules' attribute conditions. With `dryRun`: the "
                    "body is checked and the selection counted (200), and nothing is started."
                ),
                body=ref("ManualStart"),
            ),
        },
        "/v1/{env}/bulk-tasks/{taskId}": {
            "parameters": [ENV, TASK],
            "get": operation(
                "A bulk task's progress",
                TAG,
                _task_responses({"200": response("The task.", ref("BulkTask"))}),
                security=EITHER_TOKEN,
            ),
        },
        "/v1/{env}/bulk-tasks/{taskId}/skipped": {
            "parameters": [ENV, TASK],
            "get": operation(
                "A bulk task's skipped rows, in order, in pages",
                TAG,
                _task_responses(
                    {
                        "200": response("A page.", ref("SkippedPage")),
                        "400": response(
                            "invalid_parameter (a bad limit) or invalid_cursor (see `cursor`).", ref("Error")
                        ),
                    }
                ),
                description="The task's `skipped` list a page at a time. A task still running may add rows after "
                "the last page (`nextCursor` null): read again once it is done.",
                parameters=[limit_param(MAX_SKIPPED_PAGE, 100), CURSOR],
                security=EITHER_TOKEN,
            ),
        },
    }
