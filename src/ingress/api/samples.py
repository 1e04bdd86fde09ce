"""Samples of a trigger: capture one (arm, disarm), paste one, list them, delete one.

A pasted sample is held to what a live request could have been (`mapper.sample`
checks it), so that a mapping previewed on it sees what it would see live, and
is refused with the status the live request would get: 413 `body_too_large`,
431 `headers_too_large`, 415 `unsupported_media_type`, 422 for a field HTTP
could not carry, 400 `invalid_body` for a body that does not parse as its
content type says (the hook refuses it before any mapping runs).

An armed capture takes the next request instead of running it, a production
one on a live trigger: so it lapses, by default after CAPTURE_SECONDS, as a
CLI `listen` session ends (store.triggers reads a lapsed one as not armed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import (
    delete_found,
    environment,
    int_field,
    json_object,
    not_found,
    parsed_object,
    read_found,
    refuse_unknown,
    request_body,
    services,
)
from ingress.api.triggers import webhook_trigger
from ingress.api.views import sample_view
from ingress.auth import admin_only
from ingress.errors import ApiError
from ingress.jsonio import json_response
from ingress.redaction import redact_headers, redact_path, redact_query
from ingress.settings import Settings
from ingress.verification import compile_verification
from mapper.sample import SampleError, SampleLimits, mapping_input
from mapper.sample import raw_request as checked_raw_request
from store import samples, triggers
from store.clock import iso, utcnow
from store.samples import Sample
from store.triggers import Trigger

#: How long an armed capture waits for a request unless the arming says, and the longest it may.
CAPTURE_SECONDS = 600
MAX_CAPTURE_SECONDS = 3600

#: The status of each `SampleError`: what a live request with the same fault is answered.
SAMPLE_STATUSES = {
    "unknown_field": 422,
    "invalid_field": 422,
    "headers_too_large": 431,
    "body_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_body": 400,
}


@contextmanager
def sample_errors(path: str | None = None) -> Iterator[None]:
    """A `SampleError` as the API answers it: its code, message and `path` (else the one given), with the
    live status."""
    try:
        yield
    except SampleError as error:
        raise ApiError(SAMPLE_STATUSES[error.code], error.code, error.message, path=error.path or path) from None


def live_limits(settings: Settings) -> SampleLimits:
    return SampleLimits(max_header_bytes=settings.max_header_bytes, max_body_bytes=settings.max_body_bytes)


def verifier_headers(trigger: Trigger) -> frozenset[str]:
    """The headers a webhook trigger's signature check reads (its signature and timestamp headers): a custom
    name (`X-Custom-Check`) is a secret only its config tells apart. Redacted in what is kept or shown of a
    request beside the secret-bearing names, as the request log and captured samples do (ingress.hooks)."""
    verifier = compile_verification(trigger.verification) if trigger.type == "webhook" else None
    return verifier.headers_to_redact if verifier is not None else frozenset()


def raw_request(
    data: dict[str, Any], default_path: str, settings: Settings, redacted: Iterable[str] = ()
) -> dict[str, Any]:
    """A raw request `{method, path, headers, query, content_type, body}` checked, with defaults filled
    (`mapper.sample.raw_request`), within `settings`' limits. Secret headers, and those named in `redacted`,
    are redacted: samples are shown in the editor."""
    with sample_errors():
        raw = checked_raw_request(data, default_path, live_limits(settings))
    return {**raw, "headers": redact_headers(raw["headers"], redacted)}


def refuse_unreadable_body(raw: dict[str, Any]) -> None:
    """A 400 `invalid_body` at `$.body` for a body that does not parse as its content type says, as the hook
    answers such a request: a sample of it would preview what no live request of the trigger ever runs."""
    with sample_errors(path="$.body"):
        mapping_input(raw["method"], raw["path"], raw["headers"], raw["query"], raw["content_type"], raw["body"])


def sample_input(sample: Sample) -> dict[str, Any]:
    """The mapping's `request` for a sample (400 if its body does not parse)."""
    with sample_errors():
        request = mapping_input(
            sample.method, sample.path, sample.headers, sample.query, sample.content_type, sample.body
        )
    return request


def capture_view(trigger: Trigger) -> dict[str, Any]:
    """Whether capture is armed, until when, and the trigger's mode: armed on a live trigger, it takes the next
    production request instead of starting the flow (the editor warns)."""
    expires_at = trigger.capture_expires_at
    return {
        "triggerId": trigger.id,
        "armed": trigger.capture_armed,
        "expiresAt": None if expires_at is None else iso(expires_at),
        "mode": trigger.mode,
    }


async def capture_seconds(request: Request) -> int:
    """How long to wait for the request: the optional body's `expiresInSeconds`, CAPTURE_SECONDS without it."""
    raw = await request_body(request)
    data = parsed_object(raw) if raw.strip() else {}
    refuse_unknown(data, {"expiresInSeconds"})
    expected = f"an integer from 1 to {MAX_CAPTURE_SECONDS}"
    return int_field(data, "expiresInSeconds", 1, MAX_CAPTURE_SECONDS, expected, CAPTURE_SECONDS)


async def _set_capture(request: Request, env: str, trigger_id: str, seconds: int | None) -> Response:
    """Arm capture for `seconds`, or disarm it (None)."""
    expires_at = None if seconds is None else utcnow() + timedelta(seconds=seconds)
    changed = await services(request).store.write(lambda conn: triggers.set_capture(conn, env, trigger_id, expires_at))
    if changed is None:  # deleted meanwhile
        raise not_found("trigger", trigger_id)
    services(request).configuration_changed()
    return json_response(capture_view(changed))


@admin_only
async def arm_capture(request: Request) -> Response:
    env = await environment(request)
    trigger = await webhook_trigger(request, env, "capture")
    return await _set_capture(request, env, trigger.id, await capture_seconds(request))


@admin_only
async def disarm_capture(request: Request) -> Response:
    env = await environment(request)
    trigger = await webhook_trigger(request, env, "capture")
    return await _set_capture(request, env, trigger.id, None)


@admin_only
async def list_samples(request: Request) -> Response:
    env = await environment(request)
    trigger_id = request.path_params["trigger_id"]
    await read_found(request, "trigger", trigger_id, lambda conn: triggers.get_trigger(conn, env, trigger_id))
    found = await services(request).store.read(lambda conn: samples.list_samples(conn, trigger_id))
    return json_response({"data": [sample_view(sample) for sample in found]})


@admin_only
async def paste_sample(request: Request) -> Response:
    env = await environment(request)
    trigger = await webhook_trigger(request, env, "samples to paste")
    settings = services(request).settings
    raw = raw_request(await json_object(request), f"/hooks/{trigger.hook_id}", settings, verifier_headers(trigger))
    refuse_unreadable_body(raw)
    raw["path"], raw["query"] = redact_path(raw["path"]), redact_query(raw["query"])  # as a captured sample's
    sample = samples.new_sample(trigger.id, "pasted", **raw)
    await services(request).store.write(
        lambda conn: samples.insert_sample(conn, sample, keep=settings.sample_retention)
    )
    return json_response(sample_view(sample), 201)


@admin_only
async def delete_sample(request: Request) -> Response:
    env = await environment(request)
    trigger_id, sample_id = request.path_params["trigger_id"], request.path_params["sampleId"]
    await read_found(request, "trigger", trigger_id, lambda conn: triggers.get_trigger(conn, env, trigger_id))
    return await delete_found(
        request, "sample", sample_id, lambda conn: samples.delete_sample(conn, trigger_id, sample_id)
    )


routes = [
    Route("/triggers/{trigger_id}/capture", arm_capture, methods=["POST"]),
    Route("/triggers/{trigger_id}/capture", disarm_capture, methods=["DELETE"]),
    Route("/triggers/{trigger_id}/samples", list_samples, methods=["GET"]),
    Route("/triggers/{trigger_id}/samples", paste_sample, methods=["POST"]),
    Route("/triggers/{trigger_id}/samples/{sampleId}", delete_sample, methods=["DELETE"]),
]
