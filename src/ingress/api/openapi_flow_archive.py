"""The OpenAPI description of archiving a flow (ingress.api.flow_archive); `ingress.api.openapi` merges it in."""

from __future__ import annotations

from typing import Any

from ingress.api.openapi import ENV, FLOW, operation, ref, responses

DESCRIPTION = """Idempotent: archiving an archived flow keeps its `archivedAt`, unarchiving a flow that is not \
archived changes nothing. An archived flow's webhooks, SFMC activity and `/start`/`/test` answer 409 \
flow_archived, its event and segment deliveries are skipped (`flow_archived`), manual starts, CSV tasks and \
Marketo submissions are refused (409 flow_archived) and rows of tasks under way are skipped. What it accepted \
before runs to its end. Its versions no longer keep a card template from being deleted (its runs still under way \
do), nor its segment triggers a segment: they are deleted with the segment. See docs/flows.md."""


def archive_paths() -> dict[str, Any]:
    def action(summary: str) -> dict[str, Any]:
        ok = responses(200, ref("Flow"), "The flow.", 401, 404)
        return {"parameters": [ENV, FLOW], "post": operation(summary, "flows", ok, description=DESCRIPTION)}

    return {
        "/v1/{env}/action-flows/{flowId}/archive": action("Archive a flow: it starts nothing new"),
        "/v1/{env}/action-flows/{flowId}/unarchive": action("Unarchive a flow: its triggers start it again"),
    }
