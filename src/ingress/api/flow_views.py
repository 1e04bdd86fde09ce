"""Flow run-time records as the API shows them (SPEC §4 names: flowConfigId, cardInstanceId, …)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from store.analytics import AnalyticsEvent
from store.cards import Card
from store.clock import iso
from store.flow_instances import FlowInstance
from store.invocations import Invocation
from store.test_users import TestUser


def _iso(moment: datetime | None) -> str | None:
    return iso(moment) if moment is not None else None


def card_view(card: Card, now: datetime) -> dict[str, Any]:
    return {
        "cardInstanceId": card.id,
        "cardTemplateId": card.template_id,
        "templateVersion": card.template_version,
        "flowConfigId": card.flow_id,
        "flowInstanceId": card.flow_instance_id,
        "flowInvocationId": card.flow_invocation_id,
        "stepId": card.step_id,
        "userId": card.user_id,
        "eventSource": card.event_source,
        "status": card.status_at(now),
        "definition": card.definition,
        "payload": card.payload,
        "expiresAt": _iso(card.expires_at),
        "created": iso(card.created_at),
        "updated": iso(card.updated_at),
    }


def event_view(event: AnalyticsEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "eventName": event.event_name,
        "timestamp": iso(event.timestamp),
        "environmentId": event.environment_id,
        "endUserId": event.end_user_id,
        "flowConfigId": event.flow_id,
        "flowInstanceId": event.flow_instance_id,
        "flowInvocationId": event.flow_invocation_id,
        "cardInstanceId": event.card_instance_id,
        "eventSource": event.event_source,
        "properties": event.properties,
        "metadata": event.metadata,
    }


def test_user_view(user: TestUser) -> dict[str, Any]:
    return {"userId": user.user_id, "kind": user.kind, "name": user.name, "createdAt": iso(user.created_at)}


def instance_view(instance: FlowInstance) -> dict[str, Any]:
    return {
        "flowInstanceId": instance.id,
        "userId": instance.user_id,
        "status": instance.status,
        "eventSource": instance.event_source,
        "flowVersion": instance.flow_version,
        "outcomes": instance.outcomes,
        "dueAt": _iso(instance.due_at),
        "waitingCardId": instance.waiting_card_id,
        "attempts": instance.attempts,
        "lastError": instance.last_error,
        "createdAt": iso(instance.created_at),
        "updatedAt": iso(instance.updated_at),
    }


def invocation_view(invocation: Invocation, instances: list[FlowInstance]) -> dict[str, Any]:
    return {
        "flowInvocationId": invocation.flow_invocation_id,
        "flowConfigId": invocation.flow_id,
        "mode": invocation.mode,
        "flowVersion": invocation.flow_version,
        "status": invocation.status,
        "triggerId": invocation.trigger_id,
        "requestId": invocation.request_id,
        "createdAt": iso(invocation.created_at),
        "targetedUserIds": [i.user_id for i in instances if i.status != "ignored"],
        "ignoredUserIds": [i.user_id for i in instances if i.status == "ignored"],
        "instances": [instance_view(instance) for instance in instances],
    }
