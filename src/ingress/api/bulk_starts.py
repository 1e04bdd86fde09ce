"""Bulk starts (SPEC §6): CSV tasks, manual starts, and their progress.

- `POST /v1/{env}/action-flow/{flowId}/csv-task` (published flow, live) and
  `…/csv-task/test` (drafts, test users only): the body is a CSV file
  (`text/csv`), authenticated like `/start` (an access token with the
  `events` role). The header is checked here (422 with every problem); the
  rows are started in the background by the bulk runner.
- `POST /v1/{env}/action-flows/{flowId}/manual-starts` (admin token: the
  Workbench's "Send to N customers"): a published flow for selected
  customers (ids, a segment or attribute conditions), up to a limit.
- `GET /v1/{env}/bulk-tasks/{taskId}` (either kind of token): the progress.

A task is answered 202 once it is stored; docs/bulk-starts.md has the details.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.bulk_runner import published_variables
from flows.csv_rows import CsvRefused, parse_csv
from flows.start_entries import build_entry
from ingress.access_tokens import require_token
from ingress.api.common import (
    environment,
    field,
    json_object,
    not_found,
    refuse_nul_parameters,
    refuse_unknown,
    request_body,
    services,
)
from ingress.auth import admin_only
from ingress.errors import ApiError, listed_problems
from ingress.jsonio import json_response
from mapper.variables import FlowVariables
from store import flows
from store.bulk_tasks import (
    BulkTask,
    attribute_text,
    create_task,
    get_task,
    matching_customers,
    segment_member_ids,
)
from store.clock import iso

MAX_CSV_BYTES = 10 * 1024 * 1024
CSV_TYPES = ("text/csv", "application/csv")
MAX_MANUAL = 10_000
SELECTIONS = ("userIds", "segmentId", "filter")
Condition = tuple[str, str]  # (attribute, text)
MANUAL_FIELDS = {*SELECTIONS, "variables", "cardOptions", "metadata", "limit"}


async def csv_task_live(request: Request) -> Response:
    return await _csv_task(request, test=False)


async def csv_task_test(request: Request) -> Response:
    return await _csv_task(request, test=True)


async def _csv_task(request: Request, *, test: bool) -> Response:
    await require_token(request, "events")
    refuse_nul_parameters(request)
    env, flow_id = request.path_params["env"], request.path_params["flow_id"]
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in CSV_TYPES:
        raise ApiError(415, "unsupported_media_type", "send the file as the body, with Content-Type: text/csv")
    raw = await request_body(request, MAX_CSV_BYTES)
    try:
        rows = parse_csv(raw, test=test)
    except CsvRefused as refused:
        count, listed = listed_problems(refused.problems)
        raise ApiError(422, "invalid_csv", f"the file cannot be started ({count})", errors=listed) from None
    flow = await services(request).store.read(lambda conn: flows.get_flow(conn, env, flow_id))
    if flow is None:
        raise not_found("flow", flow_id)
    if not test and flow.published_version is None:
        raise ApiError(409, "flow_not_published", "the flow has no published version; publish it or use …/test")
    task_input = {"columns": rows.columns, "rows": rows.rows}
    kind = "csv-test" if test else "csv"
    return await _created(request, env, flow_id, kind, task_input, len(rows.rows))


@admin_only
async def manual_start(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    body = await json_object(request)
    refuse_unknown(body, MANUAL_FIELDS)
    chosen = [name for name in SELECTIONS if name in body]
    if len(chosen) != 1:
        raise ApiError(422, "invalid_field", "give exactly one of userIds, segmentId or filter", path="$")
    limit = field(body, "limit", _limit, f"an integer from 1 to {MAX_MANUAL}", MAX_MANUAL)
    payload: dict[str, Any] = {name: body[name] for name in ("variables", "cardOptions", "metadata") if name in body}
    for name in payload:
        field(body, name, lambda value: isinstance(value, dict), "an object", None)
    store = services(request).store
    flow = await store.read(lambda conn: flows.get_flow(conn, env, flow_id))
    if flow is None:
        raise not_found("flow", flow_id)
    declarations = await store.read(lambda conn: published_variables(conn, env, flow_id))
    if declarations is None:
        raise ApiError(409, "flow_not_published", "the flow has no published version; publish it first")
    _, problems = build_entry(["-"], payload, "-", FlowVariables(declarations))
    if problems:
        count, listed = listed_problems(problems)
        raise ApiError(
            422, "validation_error", f"the request is not valid ({count}); nothing was started", errors=listed
        )
    users = await _selected(request, env, chosen[0], body[chosen[0]])
    if len(users) > limit:
        message = f"the selection has {len(users)} customers; at most {limit} can be started at once"
        raise ApiError(422, "selection_over_limit", message, selected=len(users), limit=limit)
    task_input = {"selection": {chosen[0]: body[chosen[0]]}, "userIds": users, "payload": payload}
    return await _created(request, env, flow_id, "manual", task_input, len(users))


def _limit(value: Any) -> bool:
    return type(value) is int and 1 <= value <= MAX_MANUAL


async def _selected(request: Request, env: str, selection: str, value: Any) -> list[str]:
    """The user ids a selection names, each once, in order."""
    store = services(request).store
    if selection == "userIds":
        if not isinstance(value, list) or not value or not all(isinstance(user, str) and user for user in value):
            raise ApiError(422, "invalid_field", "userIds must be a non-empty list of user ids", path="$.userIds")
        return list(dict.fromkeys(value))
    if selection == "segmentId":
        if not isinstance(value, str) or not value:
            raise ApiError(422, "invalid_field", "segmentId must be a segment id", path="$.segmentId")
        members = await store.read(lambda conn: segment_member_ids(conn, env, value))
        if members is None:
            raise not_found("segment", value)
        return members
    conditions = _conditions(value)
    names, texts = [name for name, _ in conditions], tuple(text for _, text in conditions)
    matches = await store.read(lambda conn: matching_customers(conn, env, names, [texts]))
    return matches[texts]


def _conditions(value: Any) -> list[Condition]:
    """`{"attribute", "op": "eq", "value"}` or a non-empty list of them (all must hold), as attribute texts."""
    listed = value if isinstance(value, list) else [value]
    conditions: list[Condition] = []
    for index, condition in enumerate(listed):
        at = f"$.filter[{index}]" if isinstance(value, list) else "$.filter"
        if not isinstance(condition, dict) or set(condition) - {"attribute", "op", "value"}:
            raise ApiError(422, "invalid_field", "a condition is {attribute, op, value}", path=at)
        name, text = condition.get("attribute"), attribute_text(condition.get("value"))
        if not isinstance(name, str) or not name:
            raise ApiError(422, "invalid_field", "attribute must be a profile attribute's name", path=f"{at}.attribute")
        if condition.get("op", "eq") != "eq":
            raise ApiError(422, "invalid_field", "op must be eq (equals)", path=f"{at}.op")
        if text is None or isinstance(condition.get("value"), list):
            message = "value must be a string, a number or a boolean"
            raise ApiError(422, "invalid_field", message, path=f"{at}.value")
        conditions.append((name, text))
    if not conditions:
        raise ApiError(422, "invalid_field", "filter needs at least one condition", path="$.filter")
    return conditions


async def _created(
    request: Request, env: str, flow_id: str, kind: str, task_input: dict[str, Any], total: int
) -> Response:
    """Store the task, wake the runner, answer 202 with where its progress is."""
    services_ = services(request)
    task = await services_.store.write(lambda conn: create_task(conn, env, flow_id, kind, task_input, total))
    if services_.bulk_runner is not None:
        services_.bulk_runner.wake()
    body = {"id": task.id, "status": task.status, "total": task.total}
    return json_response(body, 202, {"Location": f"/v1/{env}/bulk-tasks/{task.id}"})


async def read_task(request: Request) -> Response:
    """The admin token, or an access token with the `events` role (what created a CSV task)."""
    try:
        services(request).admin_auth.check(request)
    except ApiError:
        await require_token(request, "events")
    refuse_nul_parameters(request)
    env, task_id = request.path_params["env"], request.path_params["taskId"]
    task = await services(request).store.read(lambda conn: get_task(conn, env, task_id))
    if task is None:
        raise not_found("bulk_task", task_id)
    return json_response(task_view(task))


def task_view(task: BulkTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "kind": task.kind,
        "flowId": task.flow_id,
        "status": task.status,
        "total": task.total,
        "processed": task.processed,
        "started": task.started,
        "skipped": task.skipped,
        **({"callback": task.callback} if task.callback is not None else {}),  # a Marketo task's
        "createdAt": iso(task.created_at),
        "updatedAt": iso(task.updated_at),
    }


routes = [
    Route("/action-flow/{flow_id}/csv-task", csv_task_live, methods=["POST"]),
    Route("/action-flow/{flow_id}/csv-task/test", csv_task_test, methods=["POST"]),
    Route("/action-flows/{flow_id}/manual-starts", manual_start, methods=["POST"]),
    Route("/bulk-tasks/{taskId}", read_task, methods=["GET"]),
]
