"""Records as the API shows them: camelCase, ISO-8601 UTC times, secrets masked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from ingress.marketo_keys import previous_expires_at
from ingress.verification import mask_secret, public_view
from store.clock import iso, utcnow
from store.event_delivery_log import Delivery
from store.flows import Flow
from store.request_log import LogEntry
from store.samples import Sample
from store.segments import ENTERED
from store.triggers import ApiTrigger, Trigger
from store.versioned import Versioned


def versioned_view(document: Versioned) -> dict[str, Any]:
    """A flow or a card template: its draft's fields beside its versions (and a flow's archive state)."""
    view = {
        "id": document.id,
        "environmentId": document.environment_id,
        **document.draft,
        "draftRevision": document.draft_revision,
        "publishedVersion": document.published_version,
        "createdAt": iso(document.created_at),
        "updatedAt": iso(document.updated_at),
    }
    if isinstance(document, Flow):
        archived_at = document.archived_at
        view |= {"archived": archived_at is not None, "archivedAt": _optional_iso(archived_at)}
    return view


def trigger_view(trigger: Trigger | ApiTrigger, base_url: str) -> dict[str, Any]:
    """Any trigger; `type` tells which kind, and the kind adds its own fields. `base_url` is where the API is
    reached."""
    if isinstance(trigger, ApiTrigger):
        return _api_trigger_view(trigger, base_url)
    kind_fields = _KIND_FIELDS.get(trigger.type, _webhook_fields)
    return {
        **_identity(trigger),
        **kind_fields(trigger, base_url),
        "mode": trigger.mode,
        "mapping": trigger.mapping,
        "createdAt": iso(trigger.created_at),
        "updatedAt": iso(trigger.updated_at),
    }


def _identity(trigger: Trigger | ApiTrigger) -> dict[str, Any]:
    return {"id": trigger.id, "environmentId": trigger.environment_id, "flowId": trigger.flow_id, "type": trigger.type}


def _api_trigger_view(trigger: ApiTrigger, base_url: str) -> dict[str, Any]:
    """No mode, mapping or hook: `startUrl` runs the published flow, `testUrl` the draft for test users."""
    flow_url = f"{base_url}/v1/{trigger.environment_id}/action-flow/{trigger.flow_id}"
    return {
        **_identity(trigger),
        "startUrl": f"{flow_url}/start",
        "testUrl": f"{flow_url}/test",
        "tokenUrl": f"{base_url}/oauth/token",
        "createdAt": iso(trigger.created_at),
    }


def _webhook_fields(trigger: Trigger, base_url: str) -> dict[str, Any]:
    return {
        "hookId": trigger.hook_id,
        "url": f"{base_url}/hooks/{trigger.hook_id}",
        "verification": public_view(trigger.verification),
        "allowedIps": trigger.allowed_ips,
        "captureArmed": trigger.capture_armed,
        "captureExpiresAt": _optional_iso(trigger.capture_expires_at),
    }


def _event_fields(trigger: Trigger, base_url: str) -> dict[str, Any]:
    """No hook, verification or allowlist: events reach it through `POST /v1/{env}/events`."""
    return {"eventName": trigger.event_name}


def _segment_fields(trigger: Trigger, base_url: str) -> dict[str, Any]:
    """An event trigger on its segment's `segment-entered` (`on: entered`) or `segment-exited` events."""
    return {"segmentId": trigger.segment_id, "on": "entered" if trigger.event_name == ENTERED else "exited"}


def _sfmc_fields(trigger: Trigger, base_url: str) -> dict[str, Any]:
    """A Journey Builder custom activity: `endpointUrl` goes into the installed package, `configUrl` is what
    Journey Builder loads from it; the signing secret is masked as a webhook's are."""
    endpoint = sfmc_endpoint(base_url, trigger)
    return {
        "hookId": trigger.hook_id,
        "endpointUrl": endpoint,
        "configUrl": f"{endpoint}/config.json",
        "signingSecret": mask_secret((trigger.verification or {}).get("secret")),
    }


def sfmc_endpoint(base_url: str, trigger: Trigger) -> str:
    """The folder of an SFMC trigger's activity URLs (ingress.sfmc): its hook id is the secret part."""
    return f"{base_url}/sfmc/{trigger.hook_id}"


def _marketo_fields(trigger: Trigger, base_url: str) -> dict[str, Any]:
    """A Marketo flow step service: Marketo installs it from `serviceDefinitionUrl` with the API key, shown
    in full only when the trigger is created."""
    service = marketo_service_url(base_url, trigger.hook_id)
    return {
        "serviceUrl": service,
        "serviceDefinitionUrl": f"{service}serviceDefinition.json",
        "apiKey": mask_secret((trigger.verification or {}).get("secret")),
        "previousApiKeyExpiresAt": _optional_iso(previous_expires_at(trigger.verification, utcnow())),
    }


def _optional_iso(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)


_KIND_FIELDS: dict[str, Callable[[Trigger, str], dict[str, Any]]] = {
    "event": _event_fields,
    "segment": _segment_fields,
    "sfmc": _sfmc_fields,
    "marketo": _marketo_fields,
}


def marketo_service_url(base_url: str, key: str | None) -> str:
    """The folder of a Marketo trigger's service (ingress.marketo), with the trailing slash Marketo joins paths
    to: its hook id is the secret part."""
    return f"{base_url}/marketo/{key}/"


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "eventId": delivery.event_id,
        "hop": delivery.hop,
        "status": delivery.status,
        "cause": delivery.cause,
        "detail": delivery.detail,
        "invocationId": delivery.invocation_id,
        "flowInvocationId": delivery.flow_invocation_id,
        "attempts": delivery.attempts,
        "nextAttemptAt": iso(delivery.due_at) if delivery.status == "pending" else None,
        "createdAt": iso(delivery.created_at),
        "updatedAt": iso(delivery.updated_at),
    }


def sample_view(sample: Sample) -> dict[str, Any]:
    return {
        "id": sample.id,
        "triggerId": sample.trigger_id,
        "source": sample.source,
        "method": sample.method,
        "path": sample.path,
        "headers": sample.headers,
        "query": sample.query,
        "contentType": sample.content_type,
        "body": sample.body,
        "createdAt": iso(sample.created_at),
    }


def request_summary(entry: LogEntry) -> dict[str, Any]:
    """What a list shows; `request_view` adds headers, body and the mapping."""
    return {
        "id": entry.id,
        "triggerId": entry.trigger_id,
        "hookId": entry.hook_id,
        "receivedAt": iso(entry.received_at),
        "method": entry.method,
        "status": entry.status,
        "cause": entry.cause,
        "message": entry.message,
        "mode": entry.mode,
        "clientIp": entry.client_ip,
        "flowInvocationId": _flow_invocation_id(entry),
        "invocationId": entry.invocation_id,
        "replayOf": entry.replay_of,
    }


def _flow_invocation_id(entry: LogEntry) -> str | None:
    """The key the sender was answered with, else the one the mapping produced, if it produced one.

    The mapping's output is whatever it returned, valid or not (a list, a
    string, a number for the key): the log keeps it as it was, the summary
    shows only a key that is a string.
    """
    answered = (entry.response or {}).get("flowInvocationId")
    output = (entry.mapping or {}).get("output")
    produced = output.get("flowInvocationId") if isinstance(output, dict) else None
    key = answered or produced
    return key if isinstance(key, str) else None


def request_view(entry: LogEntry) -> dict[str, Any]:
    mapping = entry.mapping or {}
    return {
        **request_summary(entry),
        "path": entry.path,
        "query": entry.query,
        "headers": entry.headers,
        "contentType": entry.content_type,
        "body": entry.body,
        "bodyBytes": entry.body_bytes,
        "bodyTruncated": entry.body_truncated,
        "verified": entry.verified,
        "output": mapping.get("output"),
        "mapping": entry.mapping,
        "response": entry.response,
    }
