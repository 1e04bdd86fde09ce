"""Bulk starts (SPEC §6): CSV tasks, manual starts, and their progress.

- `POST /v1/{env}/action-flow/{flowId}/csv-task` (published flow, live) and
  `…/csv-task/test` (drafts, test users only): a CSV file, as the body
  (`text/csv`) or as the one file of a `multipart/form-data` form (browsers,
  Postman), authenticated like `/start` (an access token with the `events`
  role). The header is checked here (422 with every problem); the rows are
  started in the background by the bulk runner.
- `POST /v1/{env}/action-flows/{flowId}/manual-starts` (admin token: the
  Workbench's "Send to N customers"): a published flow for selected
  customers (ids, a segment or segment rules' attribute conditions), up to a
  limit; or for the existing members of a live segment trigger of the flow,
  however many (what publishing offers, docs/customers.md). `dryRun` counts
  the selection against the limit and starts nothing (the Workbench tells
  you as you select).
- `GET /v1/{env}/bulk-tasks/{taskId}` (either kind of token): the progress, with every skipped row (and
  a test sender's users ignored, not being test users); `…/skipped?limit=&cursor=` pages through the
  skipped rows alone.

A task is answered 202 once it is stored; docs/bulk-starts.md has the details.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any, TypeGuard

from python_multipart.multipart import parse_options_header
from sqlalchemy.engine import Connection
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.csv_rows import CsvRefused, parse_csv
from flows.segment_rules import Rule, segment_problems
from flows.start_entries import build_entry
from ingress.access_tokens import require_token
from ingress.api.common import (
    environment,
    field,
    int_field,
    json_object,
    not_found,
    query_int,
    read_found,
    refuse_unknown,
    refuse_unreadable_parameters,
    request_body,
    services,
)
from ingress.api.cursors import Binding
from ingress.auth import admin_only
from ingress.errors import ApiError, listed_problems
from ingress.jsonio import json_response
from mapper.variables import FlowVariables
from store import flows, triggers
from store.bulk_tasks import (
    BulkTask,
    ExistingMembers,
    Ignored,
    Skip,
    count_existing,
    create_existing_members_task,
    create_task,
    customers_with,
    existing_members,
    get_task,
    ignored_rows,
    segment_member_ids,
    skipped_rows,
)
from store.clock import iso
from store.segments import ENTERED

MAX_CSV_BYTES = 10 * 1024 * 1024
CSV_TYPES = ("text/csv", "application/csv")
FORM = "multipart/form-data"
#: What a form may add to its file: boundaries, part headers, a few small fields beside the file.
MAX_FORM_ENVELOPE_BYTES = 64 * 1024
MAX_MANUAL = 10_000
MAX_SKIPPED_PAGE = 1000
CSV_TEST = "csv-test"  # the test sender's task: the only kind whose rows can ignore users
EXISTING = "existingMembersOf"  # a segment trigger: its existing members, unbounded
SELECTIONS = ("userIds", "segmentId", "filter", EXISTING)
#: A start of a segment trigger's existing members is live: the trigger must be too.
NOT_LIVE = "trigger_not_live"
#: What makes a segment rule a group or an event condition: a manual start's filter takes attribute conditions.
NOT_ATTRIBUTE_CONDITION = frozenset({"all", "any", "event"})
DRY_RUN = "dryRun"
MANUAL_FIELDS = {*SELECTIONS, "variables", "cardOptions", "metadata", "limit", DRY_RUN}


async def csv_task_live(request: Request) -> Response:
    return await _csv_task(request, test=False)


async def csv_task_test(request: Request) -> Response:
    return await _csv_task(request, test=True)


async def _csv_task(request: Request, *, test: bool) -> Response:
    await require_token(request, "events")
    refuse_unreadable_parameters(request)
    env, flow_id = request.path_params["env"], request.path_params["flow_id"]
    try:
        # Off the event loop: a 10 MiB file is ~a second of parsing, which every other request would wait for.
        rows = await asyncio.to_thread(parse_csv, await _csv_file(request), test=test)
    except CsvRefused as refused:
        count, listed = listed_problems(refused.problems)
        raise ApiError(422, "invalid_csv", f"the file cannot be started ({count})", errors=listed) from None
    flow = await services(request).store.read(lambda conn: flows.get_flow(conn, env, flow_id))
    if flow is None:
        raise not_found("flow", flow_id)
    if not test and flow.published_version is None:
        raise ApiError(409, "flow_not_published", "the flow has no published version; publish it or use …/test")
    task_input = {"columns": rows.columns, "rows": rows.rows}
    kind = CSV_TEST if test else "csv"
    return await _created(request, env, flow_id, kind, task_input, len(rows.rows))


async def _csv_file(request: Request) -> bytes:
    """The file: the body itself (`text/csv`), or the one file part of a `multipart/form-data` body."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type in CSV_TYPES:
        return await request_body(request, MAX_CSV_BYTES)
    if media_type == FORM:
        return await _form_file(request)
    message = f"send the file as the body with Content-Type: text/csv, or as the file field of a {FORM} form"
    raise ApiError(415, "unsupported_media_type", message)


async def _form_file(request: Request) -> bytes:
    """The form's one file part, whatever its field name and its part's content type (a browser may say
    `application/vnd.ms-excel`); other fields are ignored. The body is read under the file's limit and a
    form's envelope, then parsed by Starlette's form parser (python-multipart)."""
    raw = await request_body(request, MAX_CSV_BYTES + MAX_FORM_ENVELOPE_BYTES)
    _, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if not boundary or b"--" + boundary + b"--" not in raw:  # the parser takes a cut-off form for a short one
        message = f"the {FORM} body cannot be read: it lacks a boundary or its closing delimiter (cut off?)"
        raise ApiError(400, "invalid_form", message)

    async def body() -> AsyncGenerator[bytes, None]:
        yield raw

    try:
        form = await MultiPartParser(request.headers, body()).parse()
    except MultiPartException as error:
        raise ApiError(400, "invalid_form", f"the {FORM} body cannot be read: {error}") from None
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if len(files) != 1:
            found = "no file part" if not files else f"{len(files)} file parts"
            wanted = "exactly one file part (a field with a filename, as curl -F file=@a.csv sends)"
            raise ApiError(400, "one_file_required", f"the form must hold {wanted}; it holds {found}")
        data = await files[0].read()
    finally:
        await form.close()
    if len(data) > MAX_CSV_BYTES:
        raise ApiError(413, "body_too_large", f"the file exceeds {MAX_CSV_BYTES} bytes")
    return data


@admin_only
async def manual_start(request: Request) -> Response:
    env = await environment(request)
    flow_id = request.path_params["flow_id"]
    body = await json_object(request)
    refuse_unknown(body, MANUAL_FIELDS)
    chosen = [name for name in SELECTIONS if name in body]
    if len(chosen) != 1:
        message = f"give exactly one of userIds, segmentId, filter or {EXISTING}"
        raise ApiError(422, "invalid_field", message, path="$")
    if chosen[0] == EXISTING:
        limit = int_field(body, "limit", 1, None, "a positive integer", None)
    else:
        limit = int_field(body, "limit", 1, MAX_MANUAL, f"an integer from 1 to {MAX_MANUAL}", MAX_MANUAL)
    dry_run = field(body, DRY_RUN, lambda value: isinstance(value, bool), "true or false", False)
    payload: dict[str, Any] = {name: body[name] for name in ("variables", "cardOptions", "metadata") if name in body}
    for name in payload:
        field(body, name, lambda value: isinstance(value, dict), "an object", None)
    declared = await read_found(request, "flow", flow_id, lambda conn: flows.declared_variables(conn, env, flow_id))
    if declared.published is None:
        raise ApiError(409, "flow_not_published", "the flow has no published version; publish it first")
    _, problems = build_entry(["-"], payload, "-", FlowVariables(declared.published))
    if problems:
        count, listed = listed_problems(problems)
        raise ApiError(
            422, "validation_error", f"the request is not valid ({count}); nothing was started", errors=listed
        )
    if dry_run:  # as the task's creation would (409 flow_archived)
        await services(request).store.read(lambda conn: flows.refuse_archived(conn, env, flow_id))
    if chosen[0] == EXISTING:
        trigger_id = _trigger_id(body[EXISTING])
        if dry_run:
            return _dry_run(await _count_existing_members(request, env, flow_id, trigger_id), limit)
        return await _existing_members_start(request, env, flow_id, trigger_id, payload, limit)
    users = await _selected(request, env, chosen[0], body[chosen[0]])
    if dry_run:
        return _dry_run(len(users), limit)
    _refuse_over(len(users), limit)
    task_input = {"selection": {chosen[0]: body[chosen[0]]}, "userIds": users, "payload": payload}
    return await _created(request, env, flow_id, "manual", task_input, len(users))


def _dry_run(selected: int, limit: int | None) -> Response:
    """What the start would select, and whether its limit refuses that (the Workbench says so as you select);
    nothing is stored. The body was checked as the start's is, so a 200 that does not exceed the limit is a
    start that would be accepted, unless the selection changes meanwhile."""
    return json_response({"selected": selected, "limit": limit, "exceedsLimit": limit is not None and selected > limit})


def _refuse_over(selected: int, limit: int | None) -> None:
    if limit is not None and selected > limit:
        message = f"the selection has {selected} customers; at most {limit} can be started at once"
        raise ApiError(422, "selection_over_limit", message, selected=selected, limit=limit)


async def _existing_members_start(
    request: Request, env: str, flow_id: str, trigger_id: str, payload: dict[str, Any], limit: int | None
) -> Response:
    """The existing members of a live segment trigger of the flow, however many: the trigger is checked and
    its members selected and stored in one transaction, so the selection is the trigger's at that moment."""

    def create(conn: Connection) -> BulkTask:
        existing = _existing_members_of(conn, env, flow_id, trigger_id)
        if limit is not None:
            _refuse_over(count_existing(conn, existing), limit)
        task_input = {"selection": {EXISTING: trigger_id}, "segmentId": existing.segment_id, "payload": payload}
        return create_existing_members_task(conn, env, flow_id, existing, task_input)

    return _task_created(request, env, await services(request).store.write(create))


async def _count_existing_members(request: Request, env: str, flow_id: str, trigger_id: str) -> int:
    """How many existing members a start of them would select now (a dry run)."""
    return await services(request).store.read(
        lambda conn: count_existing(conn, _existing_members_of(conn, env, flow_id, trigger_id))
    )


def _trigger_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(422, "invalid_field", f"{EXISTING} must be a segment trigger's id", path=f"$.{EXISTING}")
    return value


def _existing_members_of(conn: Connection, env: str, flow_id: str, trigger_id: str) -> ExistingMembers:
    trigger = triggers.get_trigger(conn, env, trigger_id)
    if trigger is None:
        raise not_found("trigger", trigger_id)
    if not enters_segment(trigger) or trigger.flow_id != flow_id:
        message = f"{EXISTING} must name a segment trigger of this flow on entered; {trigger_id!r} is not one"
        raise ApiError(422, "invalid_field", message, path=f"$.{EXISTING}")
    refusal = not_live(trigger)
    if refusal is not None:
        raise ApiError(409, NOT_LIVE, refusal)
    existing = existing_members(conn, trigger)
    if existing is None:
        raise ApiError(409, "flow_not_published", "the flow has no published version; publish it first")
    return existing


def enters_segment(trigger: triggers.Trigger | triggers.ApiTrigger) -> TypeGuard[triggers.Trigger]:
    """A segment trigger on `entered`: whose segment's existing members it never starts."""
    return isinstance(trigger, triggers.Trigger) and trigger.type == "segment" and trigger.event_name == ENTERED


def not_live(trigger: triggers.Trigger) -> str | None:
    """Why a start of the segment trigger's existing members is refused (`trigger_not_live`), None when it is
    live: the start is live, and must not reach members that a test or disabled trigger would not."""
    if trigger.mode == "test":
        return (
            f"the trigger {trigger.id} is in test mode: its runs reach test users only, while a start of its "
            "existing members is live and reaches every one of them; make the trigger live first"
        )
    if trigger.mode == "disabled":
        return (
            f"the trigger {trigger.id} is disabled: it starts nobody, and neither does a start of its existing "
            "members; make the trigger live first"
        )
    return None


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
    return await store.read(lambda conn: customers_with(conn, env, conditions))


def _conditions(value: Any) -> list[Rule]:
    """`{"attribute", "op", "value"}` or a non-empty list of them (all must hold): segment rules' attribute
    conditions, checked by the segment schema (the same operators and bounds); `op` defaults to `eq`."""
    listed = value if isinstance(value, list) else [value]
    for index, condition in enumerate(listed):
        if isinstance(condition, dict) and not NOT_ATTRIBUTE_CONDITION.isdisjoint(condition):
            at = f"$.filter[{index}]" if isinstance(value, list) else "$.filter"
            message = "a filter condition is an attribute condition {attribute, op, value}: no groups or events"
            raise ApiError(422, "invalid_field", message, path=at)
    conditions = [{"op": "eq", **condition} if isinstance(condition, dict) else condition for condition in listed]
    problems = [
        {"path": _filter_path(problem["path"], listed=isinstance(value, list)), "message": problem["message"]}
        for problem in segment_problems({"name": "filter", "rules": {"all": conditions}})
    ]
    if problems:
        count, errors = listed_problems(problems)
        first = errors[0]
        message = f"the filter is not valid ({count}): {first['path']} {first['message']}"
        raise ApiError(422, "invalid_field", message, path=first["path"], errors=errors)
    return conditions


def _filter_path(path: str, *, listed: bool) -> str:
    """A problem's path in the segment body the filter was checked as (`$.rules.all[0].op`), in the request
    (`$.filter[0].op`, or `$.filter.op` for a filter of one condition not in a list)."""
    rest = path.removeprefix("$.rules").removeprefix(".all")
    if not listed:
        rest = rest.removeprefix("[0]")
    return "$.filter" + rest


async def _created(
    request: Request, env: str, flow_id: str, kind: str, task_input: dict[str, Any], total: int
) -> Response:
    """Store the task, wake the runner, answer 202 with where its progress is."""
    task = await services(request).store.write(lambda conn: create_task(conn, env, flow_id, kind, task_input, total))
    return _task_created(request, env, task)


def _task_created(request: Request, env: str, task: BulkTask) -> Response:
    runner = services(request).bulk_runner
    if runner is not None:
        runner.wake()
    body = {"id": task.id, "status": task.status, "total": task.total}
    return json_response(body, 202, {"Location": f"/v1/{env}/bulk-tasks/{task.id}"})


async def read_task(request: Request) -> Response:
    env, task_id = await _task_reader(request)

    def read(conn: Connection) -> tuple[BulkTask, list[Skip], list[Ignored]] | None:
        task = get_task(conn, env, task_id)
        if task is None:
            return None
        return task, skipped_rows(conn, task_id)[0], ignored_rows(conn, task_id) if task.kind == CSV_TEST else []

    found = await services(request).store.read(read)
    if found is None:
        raise not_found("bulk_task", task_id)
    return json_response(task_view(*found))


async def list_skipped(request: Request) -> Response:
    """A task's skipped rows in order, in pages: the task view lists them all, up to 100,000 for a CSV file."""
    env, task_id = await _task_reader(request)
    cursors = Binding("bulk-task-skipped", "task", (env, task_id))
    limit, after = query_int(request, "limit", 100, 1, MAX_SKIPPED_PAGE), cursors.requested(request)

    def page(conn: Connection) -> tuple[list[Skip], int | None] | None:
        if get_task(conn, env, task_id) is None:
            return None
        return skipped_rows(conn, task_id, after=after, limit=limit)

    skipped, next_number = await read_found(request, "bulk_task", task_id, page)
    return cursors.page([skip_view(skip) for skip in skipped], next_number)


async def _task_reader(request: Request) -> tuple[str, str]:
    """The environment and task of a request made with the admin token, or an access token with the `events`
    role (what created a CSV task)."""
    try:
        services(request).admin_auth.check(request)
    except ApiError:
        await require_token(request, "events")
    refuse_unreadable_parameters(request)
    return request.path_params["env"], request.path_params["taskId"]


def task_view(task: BulkTask, skipped: list[Skip], ignored: list[Ignored]) -> dict[str, Any]:
    """The task's progress; a test sender's lists the users its started rows ignored (not test users)."""
    return {
        "id": task.id,
        "kind": task.kind,
        "flowId": task.flow_id,
        "status": task.status,
        "total": task.total,
        "processed": task.processed,
        "started": task.started,
        "skipped": [skip_view(skip) for skip in skipped],
        **({"ignored": [_ignored_view(each) for each in ignored]} if task.kind == CSV_TEST else {}),
        **({"callback": task.callback} if task.callback is not None else {}),  # a Marketo task's
        "createdAt": iso(task.created_at),
        "updatedAt": iso(task.updated_at),
    }


def _ignored_view(ignored: Ignored) -> dict[str, Any]:
    return {"row": ignored.row, "userIds": ignored.user_ids, "count": ignored.total}


def skip_view(skip: Skip) -> dict[str, Any]:
    """Which row (`row`, `userId`, or a Marketo lead's `lead` and `leadId`), its `code` and its `reason`."""
    return {**skip.ref, "code": skip.code, "reason": skip.reason}


routes = [
    Route("/action-flow/{flow_id}/csv-task", csv_task_live, methods=["POST"]),
    Route("/action-flow/{flow_id}/csv-task/test", csv_task_test, methods=["POST"]),
    Route("/action-flows/{flow_id}/manual-starts", manual_start, methods=["POST"]),
    Route("/bulk-tasks/{taskId}", read_task, methods=["GET"]),
    Route("/bulk-tasks/{taskId}/skipped", list_skipped, methods=["GET"]),
]
