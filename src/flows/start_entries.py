"""An Action Flow API entry as the trigger request it stores, shared by `/start`, `/test` and bulk starts.

The API, a CSV task's rows and a manual start all build the same entry
(`{target: {usersById}, payload: {…}, flowInvocationId}`) and store it the
same way, so a row of a CSV file is checked exactly as the same entry sent
to `/start` would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flows.definition import duration_problems
from flows.problems import Problem, problem
from mapper.variables import FlowVariables
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
    users: list[str], given: dict[str, Any], key: str | None, variables: FlowVariables
) -> tuple[Entry, list[Problem]]:
    """The entry for `users` and the `payload` as given, and its problems, with paths inside the payload
    (`$.variables.firstName`, `$.cardOptions.expiresAfter`)."""
    payload: dict[str, Any] = {"targetUserIds": users}
    payload.update({name: given[name] for name in PAYLOAD_FIELDS if name in given})
    as_given = dict(payload)  # `apply` replaces `variables` in `payload`
    problems = variables.apply(payload) + _card_option_problems(payload.get("cardOptions"))
    entry = Entry(key or new_uuid7(), key is None, list(dict.fromkeys(users)), payload, as_given)
    return entry, problems


def _card_option_problems(options: Any) -> list[Problem]:
    """A caller's `expiresAfter` must be a duration now: it overrides the step's, and nothing renders it later."""
    if not isinstance(options, dict) or "expiresAfter" not in options:
        return []
    value = options["expiresAfter"]
    if not isinstance(value, str):  # the body's schema leaves cardOptions open
        return [problem(["cardOptions", "expiresAfter"], "expiresAfter must be an ISO-8601 duration like P1D")]
    return duration_problems(value, ["cardOptions", "expiresAfter"])
