"""A Marketo task's callback: once its leads are decided, what became of each is posted to Marketo.

Marketo's flow step waits for `POST callbackUrl` (headers `x-api-key:
<apiCallBackKey>` and `x-callback-token: <token>`) with one `activityData`
per lead: `success: true` for a lead whose flow started (now, or by an
earlier submission of the same batch), else `false` with an `errorCode` and
a `reason`. The errorCode is Marketo's name for the code the lead was
skipped with (store.bulk_tasks.Skip), never read from the reason's words.
The callback's state lives in the task row (`callback`: status `pending` |
`sent` | `failed`, attempts, the last error), so a process that dies while
sending leaves it pending and the next runner sends it again.

An attempt is claimed before it is sent (its next attempt time moves past
the timeout), so two processes never send it at once; a failure is retried
with exponential backoff up to `attempts` times, a 4xx other than 408/429 is
not retried, and a redirect is never followed (it is a failure). Only https
callback URLs are called unless `allow_http` (FLOWHOOK_MARKETO_ALLOW_HTTP_CALLBACKS).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from flows.marketo_leads import as_object, lead_of
from store import Store
from store.bulk_tasks import (
    ALREADY_STARTED,
    PENDING,
    BulkTask,
    Skip,
    claim_callback,
    due_callback,
    record_callback,
    skipped_rows,
    task_input,
)
from store.clock import iso, utcnow

log = logging.getLogger("flowhook.flows")

SENT, FAILED = "sent", "failed"
RETRIED_STATUSES = (408, 429)
#: A skipped lead's errorCode, by the code it was skipped with (flows.marketo_leads, store.bulk_tasks).
ERROR_CODES = {
    "invalid_lead": "INVALID_LEAD",
    "mapping_error": "MAPPING_ERROR",
    "validation_error": "VALIDATION_ERROR",
    "mapping_skipped": "SKIPPED",
    "trigger_disabled": "TRIGGER_DISABLED",
    "flow_archived": "FLOW_ARCHIVED",
    "flow_not_published": "FLOW_NOT_PUBLISHED",
    "idempotency_conflict": "FLOW_INVOCATION_CONFLICT",
    "trigger_deleted": "TRIGGER_DELETED",
}


@dataclass(frozen=True)
class CallbackConfig:
    allow_http: bool = False  # tests and local setups only: Marketo's callback URLs are https
    attempts: int = 5
    retry_seconds: float = 2.0  # the first retry's delay; each next one is 4 times longer
    timeout_seconds: float = 10.0


def callback_url_problem(url: Any, allow_http: bool) -> str | None:
    """Why `url` is no callback URL flowhook calls; None if it is one."""
    parsed = urllib.parse.urlsplit(url) if isinstance(url, str) else None
    schemes = ("https", "http") if allow_http else ("https",)
    if parsed is None or parsed.scheme not in schemes or not parsed.hostname:
        allowed = "an http or https" if allow_http else "an https"
        return f"callbackUrl must be {allowed} URL"
    return None


def pending_callback(url: str) -> dict[str, Any]:
    """A new task's callback state: the URL's host only is shown (the path may carry Marketo's ids)."""
    return {"status": PENDING, "attempts": 0, "host": urllib.parse.urlsplit(url).hostname, "nextAttemptAt": None}


class MarketoCallbacks:
    def __init__(self, store: Store, config: CallbackConfig | None = None) -> None:
        self._store = store
        self._config = config or CallbackConfig()

    async def send_due(self) -> int:
        """Make the oldest due callback's next attempt; 1 if one was due, else 0."""
        now = utcnow()
        task = await self._store.read(lambda conn: due_callback(conn, now))
        if task is None:
            return 0
        seen = task.callback or {}
        attempts = seen.get("attempts", 0) + 1
        claimed = {**seen, "attempts": attempts, "nextAttemptAt": iso(now + self._retry_after(attempts))}
        if await self._store.write(lambda conn: claim_callback(conn, task.id, seen, claimed)):
            submission, skipped = await self._store.read(lambda conn: _decided(conn, task.id))
            outcome = await self._attempt(submission, callback_body(submission, task, skipped, now))
            final = outcome.get("httpStatus") is not None and not _retried(outcome["httpStatus"])
            if outcome.pop("ok", False):
                state = {**claimed, **outcome, "status": SENT, "sentAt": iso(utcnow()), "nextAttemptAt": None}
            elif final or attempts >= self._config.attempts:
                state = {**claimed, **outcome, "status": FAILED, "nextAttemptAt": None}
                log.warning("marketo task %s: callback failed after %d attempts (%s)", task.id, attempts, outcome)
            else:
                state = {**claimed, **outcome, "nextAttemptAt": iso(utcnow() + self._backoff(attempts))}
            await self._store.write(lambda conn: record_callback(conn, task.id, state))
        return 1

    def _retry_after(self, attempts: int) -> timedelta:
        """When the attempt after `attempts` is due if this one never reports back: past its timeout."""
        return timedelta(seconds=self._config.timeout_seconds) + self._backoff(attempts)

    def _backoff(self, attempts: int) -> timedelta:
        return timedelta(seconds=self._config.retry_seconds * 4 ** (attempts - 1))

    async def _attempt(self, submission: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """`{ok, httpStatus?, lastError?}` of one POST of the callback."""
        url = submission["callbackUrl"]
        problem = callback_url_problem(url, self._config.allow_http)
        if problem is not None:
            return {"ok": False, "httpStatus": 0, "lastError": problem}
        headers = {
            "content-type": "application/json",
            "x-api-key": str(submission.get("apiCallBackKey") or ""),
            "x-callback-token": str(submission.get("token") or ""),
        }
        try:
            status = await asyncio.to_thread(_post, url, headers, orjson.dumps(body), self._config.timeout_seconds)
        except (OSError, ValueError) as error:  # refused, reset, timed out, a malformed answer
            return {"ok": False, "lastError": f"{type(error).__name__}: {error}"}
        ok = 200 <= status < 300
        return {"ok": ok, "httpStatus": status, **({} if ok else {"lastError": f"HTTP {status}"})}


def _decided(conn: Connection, task_id: str) -> tuple[dict[str, Any], list[Skip]]:
    """A task's submission and its skipped leads."""
    return task_input(conn, task_id)["submission"], skipped_rows(conn, task_id)[0]


def _retried(status: int) -> bool:
    """Whether an answer with this status is worth another attempt (a server error, a timeout, a rate limit)."""
    return status >= 500 or status in RETRIED_STATUSES


def callback_body(submission: dict[str, Any], task: BulkTask, skipped: list[Skip], now: datetime) -> dict[str, Any]:
    """The callback: one `leadData` and `activityData` per lead of the submission, in its order."""
    subscription = as_object(as_object(submission.get("context")).get("subscription"))
    by_lead = {skip.ref.get("lead"): skip for skip in skipped}
    data = []
    for number, item in enumerate(submission["objectData"], 1):
        _, lead_id = lead_of(item)
        data.append({"leadData": {"id": lead_id}, "activityData": _activity(number, by_lead.get(number), task)})
    token = submission.get("token")
    return {"munchkinId": subscription.get("munchkinId"), "token": token, "time": iso(now), "objectData": data}


def _activity(number: int, skipped: Skip | None, task: BulkTask) -> dict[str, Any]:
    if number > task.processed:
        return {"success": False, "errorCode": "NOT_PROCESSED", "reason": "the task failed before this lead"}
    if skipped is None or skipped.code == ALREADY_STARTED:  # started now, or by an earlier submission of the batch
        return {"success": True}
    return {"success": False, "errorCode": ERROR_CODES.get(skipped.code, "NOT_STARTED"), "reason": skipped.reason}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx is the answer: a callback is never sent anywhere else


_OPENER = urllib.request.build_opener(_NoRedirects)


def _post(url: str, headers: dict[str, str], body: bytes, timeout: float) -> int:
    """POST `body`; the answer's status (an error status too)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code
