"""An Action Flow API entry as the trigger request it stores, shared by `/start`, `/test` and bulk starts.

The API, a CSV task's rows and a manual start all build the same entry
(`{target: {usersById}, payload: {…}, flowInvocationId}`) and store it the
same way, so a row of a CSV file is checked exactly as the same entry sent
to `/start` would be.

An API entry may name its users by their customer attributes instead
(`{target: {usersByAttribute: {plan: "gold"}}}`): they are matched as a CSV
task's `target.attributes.<field>` cells are (`customers_matching`), and what
a repeat is compared by is that target as given, not the users it matched,
so a retry is a replay though the customers changed meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from flows.definition import duration_problems
from flows.problems import Problem, problem
from mapper.variables import FlowVariables
from store.bulk_tasks import matching_customers
from store.ids import new_uuid7
from store.invocations import AcceptRequest

PAYLOAD_FIELDS = ("variables", "cardOptions", "metadata", "notificationDetail")


@dataclass(frozen=True)
class Entry:
    """One validated entry, as the trigger request it stores."""

    flow_invocation_id: str
    generated_key: bool  # no flowInvocationId was given: nothing can hold the new one yet
    user_ids: list[str]  # each user once, as the executor starts them: a repeated id is not an error
    payload: dict[str, Any]
    given: dict[str, Any]  # the payload before variable defaults: what a repeat is compared by

    def accept_request(
        self,
        environment_id: str,
        flow_id: str,
        mode: str,
        request_id: str,
        trigger_id: str | None = None,
        *,
        flow_version: int | None,
    ) -> AcceptRequest:
        """`trigger_id`: the flow's API trigger for `/start` and `/test`; a bulk start has no trigger.
        `flow_version`: the published version whose variables the entry was checked against, which a live
        start runs (store.invocations.AcceptRequest)."""
        return AcceptRequest(
            environment_id=environment_id,
            flow_id=flow_id,
            trigger_id=trigger_id,
            request_id=request_id,
            mode=mode,
            flow_invocation_id=self.flow_invocation_id,
            payload=self.payload,
            log=None,
            fresh_key=self.generated_key,
            given=self.given,
            flow_version=flow_version,
        )


def build_entry(
    users: list[str],
    given: dict[str, Any],
    key: str | None,
    variables: FlowVariables,
    *,
    by_attribute: dict[str, Any] | None = None,
) -> tuple[Entry, list[Problem]]:
    """The entry for `users` and the `payload` as given, and its problems, with paths inside the payload
    (`$.variables.firstName`, `$.cardOptions.expiresAfter`). `by_attribute`: the attributes `users` were
    matched by, which a repeat is compared by in their stead."""
    payload: dict[str, Any] = {"targetUserIds": users}
    payload.update({name: given[name] for name in PAYLOAD_FIELDS if name in given})
    as_given = dict(payload)  # `apply` replaces `variables` in `payload`
    if by_attribute is not None:
        del as_given["targetUserIds"]
        as_given["usersByAttribute"] = {name: _one_spelling(value) for name, value in by_attribute.items()}
    problems = variables.apply(payload) + _card_option_problems(payload.get("cardOptions"))
    entry = Entry(key or new_uuid7(), key is None, list(dict.fromkeys(users)), payload, as_given)
    return entry, problems


def _one_spelling(value: Any) -> Any:
    """`2.0` as `2`: a number is one value however it is written, as elsewhere in a repeat's payload
    (store.invocations compares those with the stored payload, which holds no attributes)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def customers_matching(
    conn: Connection, environment_id: str, targets: list[dict[str, Any]], limit: int
) -> list[list[str]]:
    """For each target (`{attribute: value}`), the customers whose attributes equal every value given, oldest
    first, at most `limit`: the value's JSON text is matched as a CSV cell holding it would be
    (store.bulk_tasks.matching_customers: `"1"` and `1` both equal a numeric attribute 1, `true` and `"true"`
    a boolean). One query per set of attribute names, as for a CSV chunk."""
    asked = [_cells(target) for target in targets]
    groups: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for names, cells in asked:
        groups.setdefault(names, []).append(cells)
    found = {
        names: matching_customers(conn, environment_id, list(names), wanted, limit) for names, wanted in groups.items()
    }
    return [found[names][cells] for names, cells in asked]


def _cells(target: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The target's attribute names, sorted, and each one's value as the text of a CSV cell."""
    names = tuple(sorted(target))
    return names, tuple(_cell(target[name]) for name in names)


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _card_option_problems(options: Any) -> list[Problem]:
    """A caller's `expiresAfter` must be a duration now: it overrides the step's, and nothing renders it later."""
    if not isinstance(options, dict) or "expiresAfter" not in options:
        return []
    value = options["expiresAfter"]
    if not isinstance(value, str):  # the body's schema leaves cardOptions open
        return [problem(["cardOptions", "expiresAfter"], "expiresAfter must be an ISO-8601 duration like P1D")]
    return duration_problems(value, ["cardOptions", "expiresAfter"])
