"""The OpenAPI description of removing test data (ingress.api.test_data); `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from ingress.api.openapi import ENV, INTEGER, Schema, operation, record, ref, responses
from ingress.api.test_data import KINDS

SCHEMAS: dict[str, Schema] = {
    "TestDataRemoved": record({"deleted": record({kind: {**INTEGER, "minimum": 0} for kind in KINDS})}),
}

DESCRIPTION = """Deletes the environment's test data for good: its test invocations (webhook triggers in test \
mode, `…/test`, test senders) accepted so far with their flow instances, running or not (a run waiting on a timer \
or a card is stopped and removed), then every card and analytics event with `eventSource: "test"` recorded by \
then, with those events' deliveries to event triggers. Live data is never touched; test users, the request log, \
samples and bulk tasks stay. A test request repeated with a removed `flowInvocationId` starts a new run. Removed a \
chunk of about 1,000 rows per transaction: webhooks and the executor go on meanwhile, and what they record after \
the removal started may stay. Calling again removes what is left (a call cut short has removed part); the counts \
are what this call deleted. See docs/flows.md."""


def test_data_paths() -> dict[str, Any]:
    return {
        "/v1/{env}/test-data": {
            "parameters": [ENV],
            "delete": operation(
                "Remove the environment's test runs, test cards and test analytics events",
                "settings",
                responses(200, ref("TestDataRemoved"), "Removed: how many of each.", 401, 404),
                description=DESCRIPTION,
            ),
        }
    }
