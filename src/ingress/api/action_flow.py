"""The Action Flow API: `POST /v1/{env}/action-flow/{flowId}/start` and `…/test` (SPEC §5).

Authenticated by an OAuth2 access token with the `events` role (never the
admin token). `/start` runs the published flow for anyone; `/test` runs the
draft, and only for test users: the others are listed as ignored and the
executor never sends them anything.

A request is judged whole: every entry is validated first (the body schema,
then the flow's variables), and one bad entry refuses the request with every
problem and its path, storing nothing. Storing is all-or-nothing too: if one
entry's `flowInvocationId` was already used with a different payload, the
request is a 409 naming it and no entry is stored. An entry repeated with
the same payload is answered as before and creates nothing; any other entry
for an archived flow is a 409 `flow_archived`, on either route. Keys are per
mode: `/test` and `/start` never see each other's. The 202 comes only after
the invocations are committed. A user listed twice in one entry is started
once and answered once, as a webhook mapping's repeated `targetUserIds` are.

An entry's target is its `usersById`, or the customers its `usersByAttribute`
match when the request is answered (flows.start_entries.customers_matching):
1 to MAX_MATCHES of them, as for a CSV row, or the entry is a problem of the
422 (`no_match`, `too_many_matches`). An entry whose `flowInvocationId` was
used before is not matched again: it keeps the users it was first answered
with, and the store then decides replay or conflict by the target as given.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from flows.bulk_runner import MAX_MATCHES
from flows.start_entries import Entry, build_entry, customers_matching
from ingress.access_tokens import require_token
from ingress.api.common import json_object, read_found, refuse_unreadable_parameters, services
from ingress.errors import ApiError, listed_problems
from ingress.jsonio import json_response
from mapper.validation import schema_errors
from mapper.variables import FlowVariables
from store import Store, flows
from store.expansions import get_invocation
from store.ids import new_id
from store.invocations import Acceptance, accept_all_or_nothing
from store.test_users import reached_and_ignored, test_user_ids
from store.triggers import api_trigger_id

Mode = Literal["live", "test"]
SCHEMA = "action-flow-start"
Problem = dict[str, str]


async def start_live(request: Request) -> Response:
    return await _invoke(request, "live")


async def start_test(request: Request) -> Response:
    return await _invoke(request, "test")


async def _invoke(request: Request, mode: Mode) -> Response:
    await require_token(request, "events")
    refuse_unreadable_parameters(request)
    env, flow_id = request.path_params["env"], request.path_params["flow_id"]
    declarations, version = await _declared_variables(request, env, flow_id, mode)
    body = await json_object(request)
    problems = schema_errors(SCHEMA, body)
    items = _entry_items(body, problems)
    store = services(request).store
    matched = await _matched(store, env, flow_id, mode, items)
    entries = _entries(items, matched, problems, FlowVariables(declarations))
    request_id = new_id("req")
    trigger_id = api_trigger_id(flow_id)
    accepts = [
        entry.accept_request(env, flow_id, mode, request_id, trigger_id, flow_version=version) for entry in entries
    ]
    verdicts = await store.submit(accept_all_or_nothing, accepts)
    _refuse_rejected(entries, verdicts)
    if any(verdict.verdict == "accepted" for verdict in verdicts):
        services(request).invocations_arrived()
    testers = await store.read(lambda conn: test_user_ids(conn, env)) if mode == "test" else None
    answer = {"mode": mode, "flows": [_answer(entry, testers) for entry in entries]}
    replayed = all(verdict.verdict == "duplicate" for verdict in verdicts)
    return json_response(answer, 202, {"Idempotent-Replayed": "true"} if replayed else None)


async def _declared_variables(
    request: Request, env: str, flow_id: str, mode: Mode
) -> tuple[list[dict[str, Any]], int | None]:
    """The variable declarations entries are checked against, the published flow's (live) or the draft's
    (test), and the version a live start then runs: that one, though another be published meanwhile."""
    declared = await read_found(request, "flow", flow_id, lambda conn: flows.declared_variables(conn, env, flow_id))
    if mode == "test":
        return declared.draft, None
    if declared.published is None:
        raise ApiError(409, "flow_not_published", "the flow has no published version; publish it or use /test")
    return declared.published, declared.published_version


def _entry_index(path: str) -> int | None:
    """The entry a schema problem is in (`$.flows[2].target` -> 2); None for one about the body itself."""
    prefix = "$.flows["
    if not path.startswith(prefix):
        return None
    index, _, _ = path[len(prefix) :].partition("]")
    return int(index) if index.isdigit() else None


def _entry_items(body: dict[str, Any], problems: list[Problem]) -> dict[int, dict[str, Any]]:
    """The entries the schema accepts, by index; a 422 now when the body itself is refused (no list of
    entries), since nothing in it can be checked further."""
    broken = {_entry_index(problem["path"]) for problem in problems}
    if None in broken or not isinstance(body.get("flows"), list):
        raise _invalid(problems)
    return {index: item for index, item in enumerate(body["flows"]) if index not in broken}


async def _matched(
    store: Store, env: str, flow_id: str, mode: Mode, items: dict[int, dict[str, Any]]
) -> dict[int, list[str] | Problem]:
    """The users of each entry by attribute, or the problem that it matches none or too many; nothing read
    when no entry is by attribute."""
    wanted = {index: item for index, item in items.items() if "usersByAttribute" in item["target"]}
    if not wanted:
        return {}
    return await store.read(lambda conn: _match(conn, env, flow_id, mode, wanted))


def _match(
    conn: Connection, env: str, flow_id: str, mode: Mode, wanted: dict[int, dict[str, Any]]
) -> dict[int, list[str] | Problem]:
    """A key used before keeps the users it started (a retry after the customers changed is still a replay
    if its target is the same, a conflict if not); the others are matched now, 1 to MAX_MATCHES each."""
    found: dict[int, list[str] | Problem] = {}
    for index, item in wanted.items():
        key = item.get("flowInvocationId")
        prior = get_invocation(conn, flow_id, key, mode) if key is not None else None
        if prior is not None:
            found[index] = list(dict.fromkeys(prior.payload.get("targetUserIds", [])))
    fresh = [index for index in wanted if index not in found]
    targets = [wanted[index]["target"]["usersByAttribute"] for index in fresh]
    for index, users in zip(fresh, customers_matching(conn, env, targets, MAX_MATCHES + 1), strict=True):
        found[index] = _match_problem(index, users) or users
    return found


def _match_problem(index: int, users: list[str]) -> Problem | None:
    """Why an entry by attribute reaches nobody, with a CSV row's code for the same reason (docs/bulk-starts.md);
    like every problem, it says where and why, never quoting what was sent."""
    if not users:
        message, code = "no customer has every attribute value given", "no_match"
    elif len(users) > MAX_MATCHES:
        message, code = f"more than {MAX_MATCHES} customers have every attribute value given", "too_many_matches"
    else:
        return None
    return {"path": f"$.flows[{index}].target.usersByAttribute", "message": message, "code": code}


def _entries(
    items: dict[int, dict[str, Any]],
    matched: dict[int, list[str] | Problem],
    problems: list[Problem],
    variables: FlowVariables,
) -> list[Entry]:
    """Every entry as a trigger request, or one 422 listing every problem in the body.

    An entry the schema refuses is not checked further, but the others still are (whom they match,
    variables, repeated keys), so one answer lists every problem.
    """
    entries: list[Entry] = []
    first_use: dict[str, int] = {}
    for index, item in items.items():
        where = f"$.flows[{index}]"
        key = item.get("flowInvocationId")
        by_attribute = item["target"].get("usersByAttribute")
        users = item["target"]["usersById"] if by_attribute is None else matched[index]
        if isinstance(users, dict):
            problems.append(users)
            users = []
        entry, entry_problems = build_entry(users, item.get("payload", {}), key, variables, by_attribute=by_attribute)
        problems += [
            {"path": where + ".payload" + problem["path"][1:], "message": problem["message"]}
            for problem in entry_problems
        ]
        if key is not None:
            if key in first_use:
                message = f"flowInvocationId {key!r} is already used by $.flows[{first_use[key]}] of this request"
                problems.append({"path": f"{where}.flowInvocationId", "message": message})
            first_use.setdefault(key, index)
        entries.append(entry)
    if problems:
        raise _invalid(
            sorted(problems, key=lambda problem: _entry_index(problem["path"]) or 0)
        )  # stable: in entry order
    return entries


def _invalid(problems: list[dict[str, str]]) -> ApiError:
    count, listed = listed_problems(problems)
    message = f"the request is not valid ({count}); nothing was started"
    return ApiError(422, "validation_error", message, errors=listed)


def _refuse_rejected(entries: list[Entry], verdicts: list[Acceptance]) -> None:
    """A 409 when the store refused an entry (and therefore stored none of them)."""
    conflicts = [
        {
            "path": f"$.flows[{index}].flowInvocationId",
            "message": f"flowInvocationId {entry.flow_invocation_id!r} was already used with another payload",
        }
        for index, (entry, verdict) in enumerate(zip(entries, verdicts, strict=True))
        if verdict.verdict == "conflict"
    ]
    if conflicts:
        message = "a flowInvocationId was already used with another payload; nothing was started"
        raise ApiError(409, "idempotency_conflict", message, errors=conflicts)
    if any(verdict.verdict == "flow_archived" for verdict in verdicts):
        raise ApiError(409, "flow_archived", "the flow is archived: it starts nothing new until it is unarchived")
    if any(verdict.verdict == "flow_not_published" for verdict in verdicts):
        raise ApiError(409, "flow_not_published", "the flow has no published version; publish it or use /test")


def _answer(entry: Entry, testers: set[str] | None) -> dict[str, Any]:
    """The entry's key, and who it reaches."""
    return {"flowInvocationId": entry.flow_invocation_id, **reached(entry.user_ids, testers)}


def reached(user_ids: list[str], testers: set[str] | None) -> dict[str, list[str]]:
    """Who a start reaches (`targetedUserIds`) and whom it ignores: everyone live; in a test (`testers`, the
    environment's test users), test users only. Also the editor's test sends' answer (ingress.api.send_test)."""
    targeted, ignored = (user_ids, []) if testers is None else reached_and_ignored(user_ids, testers)
    return {"targetedUserIds": targeted, "ignoredUserIds": ignored}


routes = [
    Route("/action-flow/{flow_id}/start", start_live, methods=["POST"]),
    Route("/action-flow/{flow_id}/test", start_test, methods=["POST"]),
]
