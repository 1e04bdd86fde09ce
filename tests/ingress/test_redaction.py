"""Secret-bearing headers and query parameters never reach the request log."""

from __future__ import annotations

import pytest

from ingress.redaction import REDACTED, is_secret_bearing, redact_headers, redact_query
from ingress.verification import compile_verification


@pytest.mark.parametrize(
    "name",
    [
        "authorization",
        "Proxy-Authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-functions-key",
        "ocp-apim-subscription-key",
        "x-auth-token",
        "x-gitlab-token",
        "x-amz-security-token",
        "x-callback-token",
        "x-csrf-token",
        "x-webhook-secret",
        "stripe-signature",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-shopify-hmac-sha256",
        "x-slack-signature",
        "webhook-signature",
        "svix-signature",
        "x-twilio-signature",
        "x-goog-iap-jwt-assertion",
        "x-session-id",
        "x-client-credentials",
        "x-password",
    ],
)
def test_secret_bearing_headers(name: str) -> None:
    assert is_secret_bearing(name)
    assert redact_headers({name: "value"}) == {name: REDACTED}


@pytest.mark.parametrize(
    "name",
    [
        "content-type",
        "content-length",
        "user-agent",
        "host",
        "x-forwarded-for",
        "x-request-id",
        "idempotency-key",
        "webhook-id",
        "x-github-event",
        "x-github-delivery",
        "x-shopify-topic",
        "accept",
        "keyboard-layout",
    ],
)
def test_ordinary_headers_are_kept(name: str) -> None:
    assert not is_secret_bearing(name)
    assert redact_headers({name: "value"}) == {name: "value"}


def test_extra_names_are_redacted_case_insensitively_and_input_is_untouched() -> None:
    headers = {"X-Custom-Sig": "abc", "X-Sent-At": "1700000000", "Content-Type": "application/json"}
    assert redact_headers(headers, extra=["x-custom-sig", "X-SENT-AT"]) == {
        "X-Custom-Sig": REDACTED,
        "X-Sent-At": REDACTED,
        "Content-Type": "application/json",
    }
    assert headers["X-Custom-Sig"] == "abc"


def test_the_configured_signature_and_timestamp_headers_are_redacted() -> None:
    verifier = compile_verification(
        {
            "secret": "s",
            "signature": {"header": "X-Acme-Mac"},
            "timestamp": {"header": "X-Acme-Time"},
            "template": "[timestamp]:[payload]",
        }
    )
    assert verifier is not None
    headers = {"x-acme-mac": "deadbeef", "x-acme-time": "1700000000", "x-acme-event": "order.paid"}
    assert redact_headers(headers, verifier.headers_to_redact) == {
        "x-acme-mac": REDACTED,
        "x-acme-time": REDACTED,
        "x-acme-event": "order.paid",
    }


@pytest.mark.parametrize(
    "name",
    ["token", "api_key", "access_token", "signature", "secret", "key", "auth", "password", "apikey", "client_secret"],
)
def test_secret_bearing_query_parameters(name: str) -> None:
    assert redact_query(f"{name}=s3cr3t") == f"{name}={REDACTED}"
    assert redact_query(f"{name.upper()}=s3cr3t") == f"{name.upper()}={REDACTED}"


@pytest.mark.parametrize(
    ("query", "redacted"),
    [
        ("", ""),
        ("x=1&y=2", "x=1&y=2"),
        ("x=1&token=abc123&y=2", f"x=1&token={REDACTED}&y=2"),  # order and neighbours kept
        ("token=a&token=b", f"token={REDACTED}&token={REDACTED}"),  # every occurrence
        ("token=a=b%3D&x=%20", f"token={REDACTED}&x=%20"),  # the value runs to the next &; others stay encoded
        ("token=&x=1", "token=&x=1"),  # an empty value hides nothing
        ("token&x=1", "token&x=1"),  # nor does a name without one
        ("x=1&&y=&=z&", "x=1&&y=&=z&"),  # odd shapes are kept byte for byte
        ("api%5Fkey=s&access+token=t", f"api%5Fkey={REDACTED}&access+token={REDACTED}"),  # names are decoded
        ("idempotency-key=k&key_id=3&keyboard=us&x=token", "idempotency-key=k&key_id=3&keyboard=us&x=token"),
    ],
)
def test_redact_query_replaces_only_secret_values(query: str, redacted: str) -> None:
    assert redact_query(query) == redacted
