"""A Marketo task's leads: each one mapped through its trigger's mapping, as an event delivery is.

`submitAsyncAction` stores Marketo's whole submission as a bulk task of kind
`marketo` (ingress.marketo); the bulk runner decides it a chunk of leads at a
time with `MarketoLeads.plan_chunk` and commits each chunk like any bulk task
(store.bulk_tasks.advance), so a crash resumes at the first lead not committed.

Each lead becomes the request its trigger's mapping sees:
`{method: "POST", path, headers: {}, query: {}, body: {lead, flowStepFields,
campaign, context, userId}}`, where `userId` is the lead field the flow step's
`userIdField` names (`id` by default) as text. Its invocation key is the
mapping's `flowInvocationId`, else one derived from the submission's token
(or batch id) and the lead id: Marketo resubmitting a batch starts nothing new.
A lead that is not started keeps a code for the callback's `errorCode`
(flows.marketo_callbacks).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from flows.mapping_runner import MappingRunner
from mapper.request import json_request
from store import Store
from store.bulk_tasks import BulkTask, Chunk, Outcome
from store.clock import iso
from store.invocations import AcceptRequest
from store.tables import triggers
from store.triggers import TriggerWithFlow, triggers_with_flows

DEFAULT_USER_ID_FIELD = "id"


class MarketoLeads:
    def __init__(self, store: Store, runner: MappingRunner) -> None:
        self._store = store
        self._runner = runner

    async def plan_chunk(self, task: BulkTask, task_input: dict[str, Any], size: int) -> Chunk:
        """The outcome of each of the task's next `size` leads (nothing is stored); a chunk that fails the
        task when its trigger is gone."""
        chunk = Chunk(task.id, task.processed)
        trigger_id = task_input["triggerId"]
        found = await self._store.read(lambda conn: triggers_with_flows(conn, triggers.c.id == trigger_id))
        if not found:
            chunk.failed = True
            return chunk
        submission = task_input["submission"]
        leads = submission["objectData"][task.processed : task.processed + size]
        numbered = enumerate(leads, task.processed + 1)
        decided = await asyncio.gather(*(self._decide(found[0], task, submission, n, item) for n, item in numbered))
        chunk.outcomes = list(decided)
        return chunk

    async def _decide(
        self, target: TriggerWithFlow, task: BulkTask, submission: dict[str, Any], number: int, item: Any
    ) -> Outcome:
        trigger = target.trigger
        lead, lead_id = lead_of(item)
        ref: dict[str, Any] = {"lead": number, "leadId": lead_id}
        if lead is None:
            return _refused(ref, "invalid_lead", "objectData item without an objectContext object")
        if trigger.mode == "disabled":
            return _refused(ref, "trigger_disabled", "the trigger is disabled")
        if target.flow_archived:  # as accepting would decide (store.invocations), without running the mapping
            return _refused(ref, "flow_archived", "the flow is archived")
        live = trigger.mode == "live"
        result = await self._runner.run_stored(target, live, lead_request(submission, item, iso(task.created_at)))
        if result.skipped:
            return _refused(ref, "mapping_skipped", "the mapping skipped this lead (it returned null)")
        if result.error is not None:
            return _refused(ref, "mapping_error", f"{result.error.get('type')}: {result.error.get('message')}")
        if result.validation_errors or result.output is None:
            problems = "; ".join(f"{e.get('path')}: {e.get('message')}" for e in result.validation_errors)
            return _refused(ref, "validation_error", problems or "the mapping produced no trigger request")
        key = result.output.get("flowInvocationId") or lead_key(submission, task, number, lead_id)
        accept = AcceptRequest(
            environment_id=trigger.environment_id,
            flow_id=trigger.flow_id,
            trigger_id=trigger.id,
            request_id=task.id,
            mode="live" if live else "test",
            flow_invocation_id=key,
            payload={**result.output, "flowInvocationId": key},
            log=None,
            given=result.mapped,
            flow_version=target.published_version,  # whose variables the mapping applied, if live
        )
        return Outcome({**ref, "flowInvocationId": key}, accept=accept)


def _refused(ref: dict[str, Any], code: str, reason: str) -> Outcome:
    return Outcome(ref, code=code, reason=reason)


def lead_request(submission: dict[str, Any], item: dict[str, Any], received: str) -> dict[str, Any]:
    """What the trigger's mapping sees for one lead of a submission received at `received`."""
    lead = item["objectContext"]
    step = as_object(item.get("flowStepContext"))
    field = step.get("userIdField") or DEFAULT_USER_ID_FIELD
    user = lead.get(field) if isinstance(field, str) else None
    context = as_object(submission.get("context"))
    body = {
        "lead": lead,
        "flowStepFields": step,
        "campaign": submission.get("campaignContext") or context.get("campaign") or {},
        "context": context,
        "userId": None if user is None or isinstance(user, dict | list) else str(user),
    }
    return json_request("/submitAsyncAction", body, received)


def lead_of(item: Any) -> tuple[dict[str, Any] | None, Any]:
    """An objectData item's lead (its `objectContext`, None if it has none) and the lead's id."""
    lead = as_object(item).get("objectContext")
    return (lead, lead.get("id")) if isinstance(lead, dict) else (None, None)


def as_object(value: Any) -> dict[str, Any]:
    """`value` if it is a JSON object, else an empty one: Marketo's optional contexts may be absent or null."""
    return value if isinstance(value, dict) else {}


def lead_key(submission: dict[str, Any], task: BulkTask, number: int, lead_id: Any) -> str:
    """The lead's invocation key: the same for the same lead of a resubmitted batch (Marketo's `token`, else
    its `batchId`), at most 128 characters whatever Marketo sends."""
    batch = submission.get("token") or submission.get("batchId") or task.id
    digest = hashlib.sha256(str(batch).encode()).hexdigest()[:32]
    lead = lead_id if isinstance(lead_id, int | str) and len(str(lead_id)) <= 64 else f"#{number}"
    return f"marketo:{digest}:{lead}"
