"""Signed webhooks end to end: each preset with what the sender's own library signs.

Stripe, Slack and Standard Webhooks/Svix sign with their PyPI libraries;
GitHub and Shopify publish none, so their signatures are built from their
documentation. Each is accepted, and refused when tampered with, signed with
another secret, stale, or from the future.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
import standardwebhooks
import stripe
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from slack_sdk.signature import SignatureVerifier

pytestmark = pytest.mark.anyio

BODY = orjson.dumps({"type": "customer.created", "data": {"object": {"id": "cus_1", "user": "u-42"}}})
MAPPING = {"kind": "jmespath", "fields": {"targetUserIds": "body.data.object.user"}}
WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks key bytes!").decode()
OLD_WHSEC = "whsec_" + base64.b64encode(b"the previous key, 24 bytes").decode()

Signer = Callable[[bytes, str, int], dict[str, str]]


def stripe_signer(body: bytes, secret: str, at: int) -> dict[str, str]:
    return {"stripe-signature": str(stripe.WebhookSignature.generate_signature_header(body.decode(), secret, at))}


def slack_signer(body: bytes, secret: str, at: int) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(at), body=body)
    return {"x-slack-signature": str(signature), "x-slack-request-timestamp": str(at)}


def standard_signer(prefix: str) -> Signer:
    def sign(body: bytes, secret: str, at: int) -> dict[str, str]:
        msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
        signature = standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(at, UTC), body.decode())
        return {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(at), f"{prefix}-signature": signature}

    return sign


def github_signer(body: bytes, secret: str, at: int) -> dict[str, str]:
    return {"x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def shopify_signer(body: bytes, secret: str, at: int) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"x-shopify-hmac-sha256": base64.b64encode(digest).decode()}


PRESETS: dict[str, tuple[Signer, str, str, bool]] = {
    # preset: (signer, secret, another secret, signs a timestamp)
    "stripe": (stripe_signer, "whsec_stripe_0123456789abcdef", "whsec_stripe_other_secret_000", True),
    "slack": (slack_signer, "8f742231b10e8888abcd99yyyzzz85a5", "0" * 32, True),
    "standard-webhooks": (standard_signer("webhook"), WHSEC, OLD_WHSEC, True),
    "svix": (standard_signer("svix"), WHSEC, OLD_WHSEC, True),
    "github": (github_signer, "It's a Secret to Everybody", "another secret", False),
    "shopify": (shopify_signer, "shpss_0123456789abcdef", "shpss_other", False),
}


@pytest.mark.parametrize("preset", PRESETS)
async def test_preset_accepts_the_senders_signature_and_refuses_forgeries(flowhook, preset: str) -> None:
    signer, secret, other, timed = PRESETS[preset]
    trigger = await flowhook.trigger(mapping=MAPPING, verification={"preset": preset, "secret": secret})
    now = int(time.time())

    async def status(body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        response = await flowhook.sender().post(
            f"/hooks/{trigger['hookId']}", content=body, headers={"content-type": "application/json", **headers}
        )
        return response.status_code, (response.json().get("error") or {}).get("code")

    assert await status(BODY, signer(BODY, secret, now)) == (202, None)
    assert await status(BODY + b" ", signer(BODY, secret, now)) == (401, "signature_invalid")
    assert await status(BODY, signer(BODY, other, now)) == (401, "signature_invalid")
    assert await status(BODY, {}) == (401, "signature_invalid")
    if timed:
        # 10 s past the 300 s tolerance either way, from a fresh clock: the
        # requests above may have taken seconds on a loaded machine.
        assert await status(BODY, signer(BODY, secret, int(time.time()) - 310)) == (401, "timestamp_out_of_tolerance")
        assert await status(BODY, signer(BODY, secret, int(time.time()) + 310)) == (401, "timestamp_out_of_tolerance")
    causes = [entry["cause"] for entry in await flowhook.log(trigger)]
    assert causes.count("accepted") == 1


async def test_standard_webhooks_public_key_verifies_v1a_end_to_end(flowhook) -> None:
    """Standard Webhooks' asymmetric scheme: Ed25519 signatures (`v1a,`) checked with the `whpk_` public key."""
    signing, other = (Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest()) for seed in (b"a", b"b"))
    public = signing.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    verification = {"preset": "standard-webhooks", "secret": "whpk_" + base64.b64encode(public).decode()}
    trigger = await flowhook.trigger(mapping=MAPPING, verification=verification)

    async def send(body: bytes, key: Ed25519PrivateKey, at: int) -> tuple[int, str | None]:
        signature = base64.b64encode(key.sign(f"msg_1.{at}.".encode() + BODY)).decode()
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(at), "webhook-signature": f"v1a,{signature}"}
        response = await flowhook.sender().post(
            f"/hooks/{trigger['hookId']}", content=body, headers={"content-type": "application/json", **headers}
        )
        return response.status_code, (response.json().get("error") or {}).get("code")

    assert await send(BODY, signing, int(time.time())) == (202, None)
    assert await send(BODY + b" ", signing, int(time.time())) == (401, "signature_invalid")
    assert await send(BODY, other, int(time.time())) == (401, "signature_invalid")
    assert await send(BODY, signing, int(time.time()) - 310) == (401, "timestamp_out_of_tolerance")
    shown = (await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")).json()["verification"]
    assert shown["secret"].startswith("••••")


async def test_rotated_secrets_accept_either_signature(flowhook) -> None:
    """Two secrets configured during rotation; Stripe also sends two v1= signatures."""
    old, new = "whsec_old_secret_0123456789ab", "whsec_new_secret_0123456789ab"
    trigger = await flowhook.trigger(mapping=MAPPING, verification={"preset": "stripe", "secrets": [old, new]})
    now = int(time.time())
    for secret in (old, new):
        response = await flowhook.post(trigger, BODY, **stripe_signer(BODY, secret, now))
        assert response.status_code == 202, response.text
    both = stripe_signer(BODY, "whsec_unknown_000000000000000", now)["stripe-signature"]
    both += "," + stripe_signer(BODY, new, now)["stripe-signature"].split(",")[1]
    assert (await flowhook.post(trigger, BODY, stripe_signature=both)).status_code == 202
    retired = await flowhook.post(trigger, BODY, **stripe_signer(BODY, "whsec_retired_000000000000000", now))
    assert retired.status_code == 401


async def test_a_config_that_cannot_work_is_refused_at_save(flowhook) -> None:
    flow = await flowhook.flow()
    url = f"/v1/default/action-flows/{flow['id']}/triggers"
    cases = [
        ({"preset": "stripe", "secret": ""}, "$.verification.secret"),
        ({"preset": "nope", "secret": "x"}, "$.verification.preset"),
        ({"secret": "s", "algorithm": "md5", "signature": {"header": "X-Sig"}}, "$.verification.algorithm"),
        ({"secret": "s"}, "$.verification.signature"),
        ({"preset": "slack", "secrets": ["a-real-secret", "••••cret"]}, "$.verification.secrets[1]"),  # from a GET
    ]
    for config, path in cases:
        response = await flowhook.api.post(url, json={"verification": config})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_verification"
        assert response.json()["error"]["path"] == path


async def test_the_api_never_shows_a_secret(flowhook) -> None:
    secret = "whsec_visible_nowhere_0123456789"
    trigger = await flowhook.trigger(verification={"preset": "stripe", "secret": secret})
    shown = await flowhook.api.get(f"/v1/default/triggers/{trigger['id']}")
    assert secret not in shown.text and secret not in str(trigger)
    assert shown.json()["verification"]["secret"].endswith(secret[-4:])
    # Sending the masked value back is refused rather than stored as the new secret.
    resent = await flowhook.api.patch(
        f"/v1/default/triggers/{trigger['id']}", json={"verification": shown.json()["verification"]}
    )
    assert resent.status_code == 422 and resent.json()["error"]["code"] == "invalid_verification"
