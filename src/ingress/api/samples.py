"""Samples of a trigger: list them, paste one (capture arming lives with the triggers).

A pasted sample is held to what a live request could have been (`mapper.sample`
checks it), so that a mapping previewed on it sees what it would see live, and
is refused with the status the live request would get: 413 `body_too_large`,
431 `headers_too_large`, 415 `unsupported_media_type`, 422 for a field HTTP
could not carry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.api.common import environment, json_object, read_found, services
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
from store.samples import Sample
from store.triggers import Trigger

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
def sample_errors() -> Iterator[None]:
    """A `SampleError` as the API answers it: its code, message and `path`, with the live status."""
    try:
        yield
    except SampleError as error:
        raise ApiError(SAMPLE_STATUSES[error.code], error.code, error.message, path=error.path) from None


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


def sample_input(sample: Sample) -> dict[str, Any]:
    """The mapping's `request` for a sample (400 if its body does not parse)."""
    with sample_errors():
        request = mapping_input(
            sample.method, sample.path, sample.headers, sample.query, sample.content_type, sample.body
        )
    return request


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
    raw["path"], raw["query"] = redact_path(raw["path"]), redact_query(raw["query"])  # as a captured sample's
    sample = samples.new_sample(trigger.id, "pasted", **raw)
    await services(request).store.write(
        lambda conn: samples.insert_sample(conn, sample, keep=settings.sample_retention)
    )
    return json_response(sample_view(sample), 201)


routes = [
    Route("/triggers/{trigger_id}/samples", list_samples, methods=["GET"]),
    Route("/triggers/{trigger_id}/samples", paste_sample, methods=["POST"]),
]
