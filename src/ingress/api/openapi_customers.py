"""The OpenAPI description of customers, segments and segment triggers; `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from ingress.api.customers import MAX_ARRAY_ITEMS, MAX_ATTRIBUTES, MAX_ATTRIBUTES_BYTES, MAX_PAGE
from ingress.api.openapi import (
    CURSOR,
    ENV,
    INTEGER,
    NULLABLE_INTEGER,
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
    record,
    ref,
    refusal,
    response,
    responses,
    trigger_record,
)
from mapper.resources import load_schema
from store.triggers import MODES

TAG = "customers"
USER = path_param("userId", "The customer's user id (1 to 256 characters; it may hold slashes).")
SEGMENT = path_param("segmentId", "Segment id (`seg_…`).")
SCALAR: Schema = {"type": ["string", "number", "boolean", "null"]}

SCHEMAS: dict[str, Schema] = {
    "CustomerInput": closed(
        obj(
            {
                "attributes": {
                    "type": "object",
                    "maxProperties": MAX_ATTRIBUTES,
                    "additionalProperties": {
                        "oneOf": [SCALAR, {"type": "array", "maxItems": MAX_ARRAY_ITEMS, "items": SCALAR}]
                    },
                    "description": f"Replaces the profile's attributes; at most {MAX_ATTRIBUTES_BYTES} bytes as JSON.",
                }
            },
            ("attributes",),
        )
    ),
    "Customer": record(
        {
            "userId": STRING,
            "environmentId": STRING,
            "attributes": {"type": "object"},
            "segmentIds": {"type": "array", "items": STRING, "description": "The segments it is in now."},
            "createdAt": TIME,
            "updatedAt": TIME,
        }
    ),
    "CustomerPage": page_of("Customer"),
    "SegmentInput": load_schema("segment"),
    "Segment": record(
        {
            "id": STRING,
            "environmentId": STRING,
            "name": STRING,
            "rules": {"type": "object"},
            "revision": {**INTEGER, "description": "Bumped by every edit; an evaluation is of one revision."},
            "memberCount": INTEGER,
            "createdAt": TIME,
            "updatedAt": TIME,
            "evaluation": ref("SegmentEvaluation"),
        }
    ),
    "SegmentEvaluation": record(
        {
            "revision": INTEGER,
            "customersExamined": {
                **NULLABLE_INTEGER,
                "description": "So far; null (as `entered` and `exited`) for a segment evaluated before they were "
                "counted.",
            },
            "entered": NULLABLE_INTEGER,
            "exited": {**NULLABLE_INTEGER, "description": "Members who stay emit nothing."},
            "complete": {
                "type": "boolean",
                "description": "Every customer was evaluated against this revision. false in a read: under way, or "
                "cut short and being finished in the background; in the answer to an edit: a newer edit took over.",
            },
        }
    ),
    "Member": record({"userId": STRING, "enteredAt": TIME}),
    "MemberPage": page_of("Member"),
    "SegmentTrigger": trigger_record(
        "segment",
        {
            "segmentId": STRING,
            "on": {"enum": ["entered", "exited"], "description": "`segment-entered` or `segment-exited`."},
        },
    ),
    "PublishedFlow": {
        "allOf": [
            ref("Flow"),
            obj(
                {
                    "segmentTriggers": {
                        "type": "array",
                        "items": ref("SegmentTriggerReport"),
                        "description": "Each segment trigger of the flow on `entered` (docs/customers.md).",
                    }
                },
                ("segmentTriggers",),
            ),
        ]
    },
    "SegmentTriggerReport": record(
        {
            "triggerId": STRING,
            "segmentId": STRING,
            "mode": {"enum": list(MODES)},
            "membersNow": {**INTEGER, "description": "Customers in the segment now, whom the trigger will not start."},
            "startExisting": {
                "oneOf": [
                    {"type": "null"},
                    record(
                        {
                            "method": {"const": "POST"},
                            "path": STRING,
                            "body": record({"existingMembersOf": STRING}),
                            "members": {
                                **INTEGER,
                                "description": "How many it starts: the members since before `enteredBefore`.",
                            },
                            "enteredBefore": {
                                **TIME,
                                "description": "When the trigger took effect: the flow's first publication, or "
                                "the trigger's creation if later.",
                            },
                        }
                    ),
                ],
                "description": "The request that starts the flow for the trigger's existing members, however many; "
                "null while the trigger is not live (the start is live).",
            },
            "startExistingUnavailable": {
                "oneOf": [{"type": "null"}, record({"code": {"const": "trigger_not_live"}, "reason": STRING})],
                "description": "Why `startExisting` is null: the trigger is in test mode or disabled.",
            },
        }
    ),
}


def customer_paths() -> dict[str, Any]:
    invalid_customer = refusal(422, "invalid_customer (every problem with its path), unknown_field or invalid_field.")
    invalid_segment = refusal(422, "invalid_segment: every problem of the body, with its path.")
    evaluated = ref("Segment")
    return {
        "/v1/{env}/customers": {
            "parameters": [ENV],
            "get": operation(
                "List customers, oldest first",
                TAG,
                page_responses(ref("CustomerPage"), "limit"),
                parameters=[limit_param(MAX_PAGE, 50), CURSOR],
            ),
        },
        "/v1/{env}/customers/{userId}": {
            "parameters": [ENV, USER],
            "put": operation(
                "Create or replace a profile; it enters and exits segments as their rules say",
                TAG,
                {
                    **responses(200, ref("Customer"), "Replaced.", 400, 401, 404),
                    "201": response("Created.", ref("Customer")),
                    **invalid_customer,
                },
                body=ref("CustomerInput"),
            ),
            "get": operation("Read a profile", TAG, responses(200, ref("Customer"), "The profile.", 400, 401, 404)),
            "delete": operation(
                "Delete a profile: it exits every segment it was in, each exit with its event",
                TAG,
                responses(204, None, "Deleted.", 400, 401, 404),
            ),
        },
        "/v1/{env}/segments": {
            "parameters": [ENV],
            "post": operation(
                "Create a segment and evaluate it over every customer",
                TAG,
                {
                    **responses(201, evaluated, "Created; `evaluation` says what it did.", 401, 404),
                    **invalid_segment,
                    **refusal(409, "segment_limit: the environment has the most segments it may."),
                },
                body=ref("SegmentInput"),
            ),
            "get": operation(
                "List segments, oldest first", TAG, responses(200, list_of("Segment"), "Segments.", 401, 404)
            ),
        },
        "/v1/{env}/segments/{segmentId}": {
            "parameters": [ENV, SEGMENT],
            "get": operation("Read a segment", TAG, responses(200, ref("Segment"), "The segment.", 401, 404)),
            "put": operation(
                "Replace a segment's name and rules and re-evaluate it: non-matching members exit, matching ones "
                "stay (no event), new matches enter",
                TAG,
                {**responses(200, evaluated, "Replaced and re-evaluated.", 401, 404), **invalid_segment},
                body=ref("SegmentInput"),
            ),
            "delete": operation(
                "Delete a segment with its members (no exit events)",
                TAG,
                {
                    **responses(204, None, "Deleted.", 401, 404),
                    **refusal(
                        409,
                        "segment_in_use: segment triggers of flows not archived name it; delete them first (an "
                        "archived flow's are deleted with the segment).",
                    ),
                },
            ),
        },
        "/v1/{env}/segments/{segmentId}/members": {
            "parameters": [ENV, SEGMENT],
            "get": operation(
                "The segment's members, in the order the customers were created",
                TAG,
                page_responses(ref("MemberPage"), "limit"),
                parameters=[limit_param(MAX_PAGE, 50), CURSOR],
            ),
        },
    }
