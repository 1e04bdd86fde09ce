"""`POST|PUT /hooks/{hookId}`: the webhook pipeline of SPEC §3.

Checks run in this order, each failure answered with its status and logged
with its cause:

    431 headers_too_large · 405 method_not_allowed · 404 hook_not_found · 403 trigger_disabled · 403 ip_not_allowed
    · 413 body_too_large · 408 body_timeout · (499 client_disconnected: logged, not answered)
    · 415 unsupported_media_type · 401 signature_invalid
    · 401 timestamp_out_of_tolerance · (armed capture: 202 captured)
    · 400 invalid_body · 200 skipped · 422 mapping_error · 422 validation_error
    · 409 idempotency_conflict · 409 flow_archived · 409 flow_not_published · 202 accepted
    · (500 internal_error: a failure of flowhook's own, logged when the log still works)

The 202 is sent only once the invocation row is durably committed (group commit,
see store.writer). A replay (`replay`) re-runs a logged request from the
mode check on, under the trigger's current configuration.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from starlette.types import Receive, Scope, Send

from ingress.allowlist import client_ip
from ingress.body import BodyNotReceived, BodyTimedOut, BodyTooLarge, read_body
from ingress.errors import RETRY_LATER, error_body, noted_unavailable
from ingress.hook_configs import HookConfig
from ingress.jsonio import send_json
from ingress.metrics import WebhookMetrics
from ingress.oversized import head_bytes, shortened, shortened_headers
from ingress.redaction import redact_headers, redact_query
from ingress.refusals import Refusal, acceptance_refusal, mapping_refusal
from ingress.services import Services
from ingress.verification import VerificationFailure
from mapper import MappingResult, MappingSpecError, RequestBodyError, UnsupportedContentType
from mapper.request import body_bytes, body_text, exact_text, normalize_headers, request_from, unreadable
from mapper.result import error_info
from store.clock import iso, utcnow
from store.ids import new_id, new_uuid7
from store.invocations import Acceptance, AcceptRequest, accept_batch
from store.request_log import LogEntry, insert_entries
from store.samples import Capture, capture_batch, new_sample
from store.storable import NUL, storable

logger = logging.getLogger("flowhook.ingress")

#: The methods a webhook takes; the route takes every method, so that the others are logged too.
METHODS = ("POST", "PUT")

#: Every cause a request-log entry can carry (the `cause` filter's values).
CAUSES = (
    "accepted",
    "duplicate",
    "captured",
    "skipped",
    "headers_too_large",
    "method_not_allowed",
    "hook_not_found",
    "trigger_disabled",
    "ip_not_allowed",
    "body_too_large",
    "body_timeout",
    "client_disconnected",
    "unsupported_media_type",
    "signature_invalid",
    "timestamp_out_of_tolerance",
    "invalid_body",
    "mapping_error",
    "sandbox_crashed",
    "validation_error",
    "idempotency_conflict",
    "flow_archived",
    "flow_not_published",
    "internal_error",
)


@dataclass
class Outcome:
    """What the sender is answered (and the log records)."""

    status: int
    cause: str
    body: dict[str, Any]
    message: str | None = None  # the admin's fuller explanation, kept in the log only
    headers: dict[str, str] | None = None

    @classmethod
    def error(
        cls,
        status: int,
        code: str,
        message: str,
        request_id: str,
        *,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> Outcome:
        body = error_body(code, message, request_id, **extra)
        return cls(status, code, body, detail or message, headers)


@dataclass
class Arrival:
    """A request as the pipeline sees it (from the wire, or rebuilt from the log for a replay)."""

    request_id: str
    received_at: datetime
    method: str
    path: str
    query: str
    headers: dict[str, str]
    content_type: str | None
    client_ip: str
    raw_body: bytes = b""
    head_bytes: int = 0  # path, query and headers as they came over the wire
    flow_invocation_id: str | None = None  # a replay's, for when the mapping gives none (see `replay`)


def normalized_headers(scope: Scope) -> dict[str, str]:
    """Lower-cased names, repeats joined with ", " (as mappings see them), straight from the scope."""
    return normalize_headers((name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"])


class HookPipeline:
    def __init__(self, services: Services) -> None:
        self._services = services
        self._settings = services.settings
        self._metrics = WebhookMetrics()

    async def receive(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint: run the pipeline, log the request, answer the sender."""
        started = time.perf_counter()
        arrival = self._arrival(scope)
        try:
            outcome = await self._receive(receive, arrival, scope["path_params"]["hook_id"])
        except Exception as error:  # noqa: BLE001 - answer and log it rather than reset the connection
            if noted_unavailable(error, f"webhook request {arrival.request_id}"):
                message = "the request could not be stored; retry later"
                outcome = Outcome.error(503, "store_unavailable", message, arrival.request_id, headers=RETRY_LATER)
            else:  # a bug of ours
                logger.exception("request %s failed inside flowhook", arrival.request_id)
                outcome = await self._internal_error(arrival, scope["path_params"]["hook_id"])
        if outcome.cause != "client_disconnected":  # nobody to answer
            await send_json(send, outcome.body, outcome.status, outcome.headers)
        self._metrics.record(outcome.status, outcome.cause, time.perf_counter() - started)

    async def _internal_error(self, arrival: Arrival, hook_id: str) -> Outcome:
        """A 500 for a request the pipeline failed on, logged under its trigger when the log still works."""
        message = "flowhook failed to process this request; it was not accepted"
        outcome = Outcome.error(500, "internal_error", message, arrival.request_id)
        try:
            config = await self._services.hook_configs.get(hook_id)
            log = self._log_entry(arrival, hook_id, config)
            self._keep_body(log, arrival.raw_body)
            await self._finish(log, outcome)
        except Exception:  # noqa: BLE001 - the answer goes out all the same
            logger.exception("could not log request %s", arrival.request_id)
        return outcome

    async def _receive(self, receive: Receive, arrival: Arrival, hook_id: str) -> Outcome:
        request_id = arrival.request_id
        if arrival.head_bytes > self._settings.max_header_bytes:  # first: not even the hook id is looked up
            message = f"the request's URL and headers exceed {self._settings.max_header_bytes} bytes"
            too_large = Outcome.error(431, "headers_too_large", message, request_id, headers={"Connection": "close"})
            return await self._finish(self._shortened_log_entry(arrival, hook_id), too_large)
        config = await self._services.hook_configs.get(hook_id)
        log = self._log_entry(arrival, hook_id, config)
        if arrival.method not in METHODS:  # logged like any request to a hook, under its trigger if it has one
            allow = {"Allow": ", ".join(METHODS)}
            message = f"a webhook takes {' or '.join(METHODS)}"
            return await self._finish(log, Outcome.error(405, "method_not_allowed", message, request_id, headers=allow))
        if config is None:
            return await self._finish(log, Outcome.error(404, "hook_not_found", "no webhook at this URL", request_id))
        refused = self._refuse_by_mode(config, request_id)
        if refused is None and not config.allowlist.allows(arrival.client_ip):
            refused = Outcome.error(
                403,
                "ip_not_allowed",
                "this client address may not call this webhook",
                request_id,
                detail=f"client address {arrival.client_ip} is not in the trigger's allowlist",
            )
        if refused is None:
            refused = await self._read_body(receive, arrival, log)
        if refused is not None:
            return await self._finish(log, refused)
        if config.verifier is not None:
            try:
                config.verifier.verify(arrival.headers, arrival.raw_body, time.time())
            except VerificationFailure as failure:
                refused = Outcome.error(401, failure.code, _public_reason(failure), request_id, detail=failure.message)
                return await self._finish(log, refused)
        log.verified = True
        if config.trigger.capture_armed:
            captured = await self._capture(config, arrival, log)
            if captured is not None:
                return captured
        return await self._process(config, arrival, log)

    async def _read_body(self, receive: Receive, arrival: Arrival, log: LogEntry) -> Outcome | None:
        """Read the body into `arrival` and keep it in `log`; the refusal if it did not arrive or cannot be read."""
        declared = arrival.headers.get("content-length")
        try:
            limit, timeout = self._settings.max_body_bytes, self._settings.body_timeout_seconds
            arrival.raw_body = await read_body(receive, limit, declared, timeout)
        except BodyNotReceived as incomplete:
            # Refused on its Content-Length, a body is as large as announced; otherwise as much as arrived.
            refused_unread = isinstance(incomplete, BodyTooLarge) and declared is not None and declared.isdigit()
            size = int(declared) if refused_unread and declared is not None else None
            self._keep_body(log, incomplete.head, truncated=True, size=size)
            return self._incomplete(incomplete, arrival.request_id)
        self._keep_body(log, arrival.raw_body)
        reason = unreadable(arrival.content_type, arrival.headers.get("content-encoding"))
        return None if reason is None else _unsupported(reason, arrival.request_id)

    async def replay(
        self, original: LogEntry, config: HookConfig, *, flow_invocation_id: str | None = None
    ) -> tuple[LogEntry, Outcome]:
        """Re-run a logged request under the trigger's current configuration.

        Only requests that passed the IP and signature checks when they
        arrived can be replayed (the caller checks), so those checks are not
        repeated: the signed timestamp would be stale by now, and the
        signature headers were redacted from the log.

        `flow_invocation_id` is used when the mapping gives none (the caller
        derives it from an `Idempotency-Key`, so a retried replay repeats the
        first); without it a fresh one is generated, as for a live request.
        """
        arrival = Arrival(
            request_id=new_id("req"),
            received_at=utcnow(),
            method=original.method,
            path=original.path,
            query=original.query,
            headers=dict(original.headers),
            content_type=original.content_type,
            client_ip=original.client_ip or "",
            raw_body=body_bytes(original.body, original.content_type),
            flow_invocation_id=flow_invocation_id,
        )
        log = self._log_entry(arrival, original.hook_id, config)
        log.replay_of = original.id
        log.verified = True
        self._keep_body(log, arrival.raw_body)
        refused = self._refuse_by_mode(config, arrival.request_id)
        if refused is not None:
            return log, await self._finish(log, refused)
        return log, await self._process(config, arrival, log)

    async def _process(self, config: HookConfig, arrival: Arrival, log: LogEntry) -> Outcome:
        """From parsing the body to the durable accept: what a replay shares with a live request."""
        request_id = arrival.request_id
        try:
            mapping_input = request_from(
                arrival.method,
                arrival.path,
                arrival.headers,
                arrival.query,
                arrival.raw_body,
                arrival.content_type,
                iso(arrival.received_at),
            )
        except UnsupportedContentType as error:
            return await self._finish(log, _unsupported(str(error), request_id))
        except RequestBodyError as error:
            return await self._finish(log, Outcome.error(400, "invalid_body", str(error), request_id))
        try:
            result = await self._services.runner.run(config.mapping, mapping_input)
        except MappingSpecError as error:  # saved specs compile; this is a stored spec from an older version
            result = MappingResult(ok=False, error=error_info("MappingSpecError", error.message, line=error.line))
        log.mapping = result.to_dict()
        rejected = _judge(result, request_id)
        if rejected is not None:
            return await self._finish(log, rejected)
        return await self._accept(config, arrival, log, result)

    async def _accept(self, config: HookConfig, arrival: Arrival, log: LogEntry, result: MappingResult) -> Outcome:
        trigger = config.trigger
        output = result.output
        assert output is not None  # judged valid
        given_id = output.get("flowInvocationId") or arrival.flow_invocation_id
        flow_invocation_id = given_id or new_uuid7()
        outcome: Outcome | None = None

        def finish_log(entry: LogEntry, acceptance: Acceptance) -> None:
            nonlocal outcome
            outcome = _verdict(acceptance, arrival.request_id, flow_invocation_id)
            _record(entry, outcome)
            if acceptance.invocation is not None:
                entry.invocation_id = acceptance.invocation.id

        accept = AcceptRequest(
            environment_id=trigger.environment_id,
            flow_id=trigger.flow_id,
            trigger_id=trigger.id,
            request_id=arrival.request_id,
            mode=trigger.mode,
            flow_invocation_id=flow_invocation_id,
            payload=output,
            log=log,
            finish_log=finish_log,
            fresh_key=not given_id,
            given=result.mapped,
            flow_version=config.target.published_version,  # whose variables the mapping applied, if live
        )
        await self._services.store.submit(accept_batch, accept)
        self._services.retention.note(log.trigger_id)
        assert outcome is not None
        if outcome.cause == "accepted":
            self._services.invocations_arrived()
        return outcome

    async def _capture(self, config: HookConfig, arrival: Arrival, log: LogEntry) -> Outcome | None:
        """Save the request as a sample if the trigger is still armed (exactly one request per arming).

        A sample keeps the body as sent; one that cannot be kept so (a charset that cannot decode it, answered
        400 by the pipeline, or a NUL) is left to the pipeline, and capture stays armed for the next.
        """
        body = keepable_text(arrival.raw_body, arrival.content_type)
        if body is None:
            return None
        sample = new_sample(
            config.trigger.id,
            "captured",
            method=arrival.method,
            path=arrival.path,
            headers=log.headers,
            query=log.query,
            content_type=arrival.content_type,
            body=body,
        )
        outcome = Outcome(202, "captured", {"captured": True, "requestId": arrival.request_id, "sampleId": sample.id})
        _record(log, outcome)
        capture = Capture(sample=sample, log=log, keep=self._settings.sample_retention)
        if not await self._services.store.submit(capture_batch, capture):
            return None
        self._services.configuration_changed()
        self._services.retention.note(log.trigger_id)
        return outcome

    async def _finish(self, log: LogEntry, outcome: Outcome) -> Outcome:
        """Record a request that stops here; answer only once its log entry is committed."""
        _record(log, outcome)
        await self._services.store.submit(insert_entries, log)
        self._services.retention.note(log.trigger_id)
        return outcome

    def _incomplete(self, incomplete: BodyNotReceived, request_id: str) -> Outcome:
        close = {"Connection": "close"}  # the rest of the body is never read
        if isinstance(incomplete, BodyTooLarge):
            message = f"the body exceeds the limit of {self._settings.max_body_bytes} bytes"
            return Outcome.error(413, "body_too_large", message, request_id, headers=close)
        if isinstance(incomplete, BodyTimedOut):
            message = f"the body did not arrive within {self._settings.body_timeout_seconds:g} s"
            return Outcome.error(408, "body_timeout", message, request_id, headers=close)
        # Logged with nginx's 499 ("client closed request"); no answer is sent.
        message = "the sender closed the connection before its body was complete"
        detail = f"{message} ({len(incomplete.head)} bytes of it were read)"
        return Outcome.error(499, "client_disconnected", message, request_id, detail=detail)

    def _refuse_by_mode(self, config: HookConfig, request_id: str) -> Outcome | None:
        if config.trigger.mode == "disabled":
            return Outcome.error(403, "trigger_disabled", "this webhook trigger is disabled", request_id)
        return None

    def _arrival(self, scope: Scope) -> Arrival:
        """Read from the ASGI scope directly: Starlette's URL and Headers objects cost more than the rest."""
        headers = normalized_headers(scope)
        peer = scope["client"][0] if scope.get("client") else ""
        return Arrival(
            request_id=new_id("req"),
            received_at=utcnow(),
            method=scope["method"],
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=headers,
            content_type=headers.get("content-type"),
            client_ip=client_ip(peer, headers, self._services.trusted_proxies, self._settings.forwarded_header),
            head_bytes=head_bytes(scope),
        )

    def _shortened_log_entry(self, arrival: Arrival, hook_id: str) -> LogEntry:
        """What the log keeps of a request whose head is too large: the beginning of each part."""
        content_type = shortened(arrival.content_type) if arrival.content_type is not None else None
        short = replace(
            arrival,
            path=shortened(arrival.path),
            query=shortened(arrival.query),
            headers=shortened_headers(arrival.headers),
            content_type=content_type,
        )
        return self._log_entry(short, shortened(hook_id), None)

    def _log_entry(self, arrival: Arrival, hook_id: str, config: HookConfig | None) -> LogEntry:
        """The request as the log keeps it: secret-bearing headers (the verifier's too) and query secrets redacted."""
        trigger = config.trigger if config is not None else None
        verifier = config.verifier if config is not None else None
        return LogEntry(
            id=arrival.request_id,
            environment_id=trigger.environment_id if trigger else None,
            trigger_id=trigger.id if trigger else None,
            hook_id=storable(hook_id),
            received_at=arrival.received_at,
            method=arrival.method,
            path=storable(arrival.path),
            query=redact_query(arrival.query),
            client_ip=arrival.client_ip or None,
            headers=redact_headers(arrival.headers, verifier.headers_to_redact if verifier else ()),
            content_type=arrival.content_type,
            body="",
            body_bytes=0,
            body_truncated=False,
            mode=trigger.mode if trigger else None,
        )

    def _keep_body(self, log: LogEntry, body: bytes, *, truncated: bool = False, size: int | None = None) -> None:
        """The first `log_body_bytes` of `body`; `size` is the body's whole size when more was announced.

        Bytes its charset cannot decode (and NUL, see store.storable) are kept as replacement characters,
        and the body then counts as truncated too: the log no longer holds it as sent, so it cannot be replayed.
        """
        cap = self._settings.log_body_bytes
        cut = truncated or len(body) > cap
        exact = keepable_text(body[:cap], log.content_type, cut=cut)
        log.body = exact if exact is not None else storable(body_text(body[:cap], log.content_type, cut=cut))
        log.body_truncated = cut or exact is None
        log.body_bytes = len(body) if size is None else size


def keepable_text(raw_body: bytes, content_type: str | None, *, cut: bool = False) -> str | None:
    """The body as text both stores keep exactly (decoded as declared, no NUL), or None."""
    text = exact_text(raw_body, content_type, cut=cut)
    return None if text is None or NUL in text else text


def _record(log: LogEntry, outcome: Outcome) -> None:
    log.status = outcome.status
    log.cause = outcome.cause
    log.message = None if outcome.message is None else storable(outcome.message)
    log.response = outcome.body


def _unsupported(reason: str, request_id: str) -> Outcome:
    """The sender is not quoted its own header back (answers never echo a header value); the log is."""
    message = "the content type, its charset or the content encoding is not supported; send JSON, form or text"
    return Outcome.error(415, "unsupported_media_type", message, request_id, detail=reason)


def _public_reason(failure: VerificationFailure) -> str:
    """What the sender is told: the kind of failure, not which part of its signature we disliked."""
    if failure.code == "timestamp_out_of_tolerance":
        return "the signed timestamp is outside the accepted tolerance"
    return "the request signature is missing or does not match"


def _judge(result: MappingResult, request_id: str) -> Outcome | None:
    """The mapping's verdict as an answer (ingress.refusals); None when the output is a valid trigger request."""
    if result.skipped:
        return Outcome(200, "skipped", {"skipped": True, "requestId": request_id}, "the mapping skipped this request")
    refusal = mapping_refusal(result)
    if refusal is None:
        return None
    if refusal.code == "validation_error":  # `paths`: what the answer held before `errors`; kept for clients
        return _refused(refusal, request_id, paths=[problem["path"] for problem in refusal.extra["errors"]])
    return _refused(refusal, request_id)


def _verdict(acceptance: Acceptance, request_id: str, flow_invocation_id: str) -> Outcome:
    invocation = acceptance.invocation
    if acceptance.verdict == "accepted":
        assert invocation is not None
        body = {"requestId": request_id, "flowInvocationId": flow_invocation_id, "mode": invocation.mode}
        return Outcome(202, "accepted", body)
    if acceptance.verdict == "duplicate":
        assert invocation is not None
        original: dict[str, Any] = {
            "requestId": invocation.request_id,
            "flowInvocationId": flow_invocation_id,
            "mode": invocation.mode,
        }
        message = "a repeat of an earlier request (same flowInvocationId and payload); answered as before"
        return Outcome(202, "duplicate", original, message, headers={"Idempotent-Replayed": "true"})
    if acceptance.verdict == "trigger_deleted":  # while this request was on its way: the URL is dead now
        detail = "the trigger was deleted while this request was being processed"
        return Outcome.error(404, "hook_not_found", "no webhook at this URL", request_id, detail=detail)
    refusal = acceptance_refusal(acceptance, flow_invocation_id)
    assert refusal is not None  # every other verdict is a refusal
    return _refused(refusal, request_id)


def _refused(refusal: Refusal, request_id: str, **extra: Any) -> Outcome:
    return Outcome.error(
        refusal.status, refusal.code, refusal.message, request_id, detail=refusal.detail, **refusal.extra, **extra
    )


class HookEndpoint:
    """The route's endpoint as a bare ASGI app: Starlette's request/response
    wrapping cost as much CPU per webhook as all of the pipeline's checks."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pipeline: HookPipeline = scope["app"].state.pipeline
        await pipeline.receive(scope, receive, send)


hook_endpoint = HookEndpoint()
