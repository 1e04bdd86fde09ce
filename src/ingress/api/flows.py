"""Flows: create, read, edit the draft (checked whole: every problem with its path), publish (with what its
segment triggers can start)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from flows.definition import flow_problems
from ingress.api.bulk_starts import EXISTING, NOT_LIVE, enters_segment, not_live
from ingress.api.card_templates import unpublished_templates
from ingress.api.common import environment, not_found, services
from ingress.api.flow_archive import archived_filter
from ingress.api.problems import refuse_problems
from ingress.api.versioned import VersionedEndpoints
from ingress.api.views import versioned_view
from ingress.jsonio import json_response
from store import flows, segments, triggers
from store.bulk_tasks import count_existing, existing_members
from store.clock import iso


def flow_draft(data: dict[str, Any]) -> dict[str, Any]:
    """A flow body that passed schemas/flow.schema.json and the rules across steps (422 with every problem)."""
    refuse_problems("invalid_flow", "flow", flow_problems(data))
    return {"variables": [], "steps": [], **data}


def publish_checked(conn: Connection, environment_id: str, flow_id: str) -> flows.Flow | None:
    """Publish the draft unless a card template it sends is missing or unpublished (422 listing them)."""
    flow = flows.get_flow(conn, environment_id, flow_id)
    if flow is None:
        return None
    steps = flow.draft.get("steps", [])
    refuse_problems("flow_not_publishable", "flow", unpublished_templates(conn, environment_id, steps))
    return flows.publish(conn, environment_id, flow_id)


@dataclass(frozen=True)
class Published:
    flow: flows.Flow
    segment_triggers: list[dict[str, Any]]  # what the answer reports per segment trigger on `entered`


def publish_with_report(conn: Connection, environment_id: str, flow_id: str) -> Published | None:
    """Publish (as `publish_checked`), and count the customers already in each segment a trigger of the flow
    enters on: the seed's "publishing reports how many customers are already in the segment"."""
    flow = publish_checked(conn, environment_id, flow_id)
    if flow is None:
        return None
    entering = [
        trigger for trigger in triggers.list_triggers(conn, environment_id, flow_id) or [] if enters_segment(trigger)
    ]
    counts = segments.member_counts(conn, {trigger.segment_id for trigger in entering if trigger.segment_id})
    report = [
        {
            "triggerId": trigger.id,
            "segmentId": trigger.segment_id,
            "mode": trigger.mode,
            "membersNow": counts.get(trigger.segment_id or "", 0),
            **_start_existing(conn, f"/v1/{environment_id}/action-flows/{flow_id}/manual-starts", trigger),
        }
        for trigger in entering
    ]
    return Published(flow, report)


def _start_existing(conn: Connection, path: str, trigger: triggers.Trigger) -> dict[str, Any]:
    """`startExisting`: the start of the trigger's existing members (docs/customers.md), who were in the segment
    before the trigger took effect (`enteredBefore`: this publication, if it is the flow's first) and whom it
    never starts; offered only while the trigger is live, since the start is live (else why not)."""
    refusal = not_live(trigger)
    if refusal is not None:
        return {"startExisting": None, "startExistingUnavailable": {"code": NOT_LIVE, "reason": refusal}}
    existing = existing_members(conn, trigger)
    assert existing is not None  # the flow is published: this transaction did
    offer = {
        "method": "POST",
        "path": path,
        "body": {EXISTING: trigger.id},
        "members": count_existing(conn, existing),
        "enteredBefore": iso(existing.entered_before),
    }
    return {"startExisting": offer, "startExistingUnavailable": None}


class FlowEndpoints(VersionedEndpoints):
    """A flow's publish answer also has `segmentTriggers`: customers already in a segment are not started by
    its trigger (they entered before), and a manual start of the trigger's existing members starts them
    (docs/customers.md)."""

    async def publish(self, request: Request) -> Response:
        env = await environment(request)
        flow_id = request.path_params["flow_id"]
        published = await services(request).store.write(lambda conn: publish_with_report(conn, env, flow_id))
        if published is None:
            raise not_found("flow", flow_id)
        services(request).configuration_changed()
        return json_response({**versioned_view(published.flow), "segmentTriggers": published.segment_triggers})


# Hooks map payloads with the flow's variables, so its edits and publications reload their configuration.
routes = FlowEndpoints(
    "/action-flows",
    id_param="flow_id",
    kind="flow",
    checked_draft=flow_draft,
    insert=flows.insert_flow,
    list_all=flows.list_flows,
    list_filters=archived_filter,
    get=flows.get_flow,
    update_draft=flows.update_draft,
    publish=publish_checked,
    changes_configuration=True,
).routes()
