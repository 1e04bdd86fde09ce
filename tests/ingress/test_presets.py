"""Each preset against what the sender really sends.

Signatures come from the senders' own libraries where they are on PyPI
(`stripe`, `slack_sdk`, `standardwebhooks`, which also covers Svix: same
scheme, `svix-` headers); GitHub and Shopify publish no Python signer, so
those are built by hand from their documentation (GitHub's own test vector).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
import standardwebhooks
import stripe
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from slack_sdk.signature import Clock, SignatureVerifier

from ingress.presets import PRESETS
from ingress.verification import (
    SIGNATURE_INVALID,
    TIMESTAMP_OUT_OF_TOLERANCE,
    VerificationConfigError,
    VerificationFailure,
    Verifier,
    compile_verification,
)

NOW = 1_700_000_000
BODY = b'{"id": "evt_1", "object": "event", "data": {"object": {"customer": "cus_1"}}}'


def preset(name: str, **options: object) -> Verifier:
    verifier = compile_verification({"preset": name, **options})
    assert verifier is not None
    return verifier


def code_of(verifier: Verifier, headers: dict[str, str], body: bytes = BODY, now: float = NOW) -> str:
    with pytest.raises(VerificationFailure) as caught:
        verifier.verify(headers, body, now)
    return caught.value.code


def test_every_preset_compiles_with_a_secret() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()
    for name in PRESETS:
        assert isinstance(compile_verification({"preset": name, "secret": secret}), Verifier)


# --- Stripe --------------------------------------------------------------------------

STRIPE_SECRET = "whsec_test_0123456789abcdefghij"
STRIPE_OLD_SECRET = "whsec_test_old_9876543210zyxwvu"


def stripe_header(body: bytes = BODY, secret: str = STRIPE_SECRET, timestamp: int = NOW) -> str:
    return str(stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=timestamp))


def stripe_v1(body: bytes, secret: str, timestamp: int = NOW) -> str:
    return stripe_header(body, secret, timestamp).split(",")[1]


def test_stripe_accepts_the_libraries_signature() -> None:
    preset("stripe", secret=STRIPE_SECRET).verify({"stripe-signature": stripe_header()}, BODY, NOW)


def test_stripe_rejects_tampering_and_wrong_secret() -> None:
    verifier = preset("stripe", secret=STRIPE_SECRET)
    assert (
        code_of(verifier, {"stripe-signature": stripe_header()}, BODY.replace(b"cus_1", b"cus_2")) == SIGNATURE_INVALID
    )
    assert code_of(verifier, {"stripe-signature": stripe_header(secret=STRIPE_OLD_SECRET)}) == SIGNATURE_INVALID
    assert code_of(verifier, {}) == SIGNATURE_INVALID


def test_stripe_stale_and_future_timestamps() -> None:
    verifier = preset("stripe", secret=STRIPE_SECRET)
    header = {"stripe-signature": stripe_header()}
    assert code_of(verifier, header, now=NOW + 301) == TIMESTAMP_OUT_OF_TOLERANCE
    # Stripe's library only rejects old timestamps; a far-future one is a replay too.
    assert code_of(verifier, header, now=NOW - 301) == TIMESTAMP_OUT_OF_TOLERANCE
    preset("stripe", secret=STRIPE_SECRET, toleranceSeconds=3600).verify(header, BODY, NOW + 3600)


def test_stripe_rotation_two_signatures_in_the_header_and_two_secrets() -> None:
    """During a roll Stripe signs with the old and the new secret: `t=…,v1=<new>,v1=<old>`."""
    rotated = f"{stripe_header()},{stripe_v1(BODY, STRIPE_OLD_SECRET)}"
    for configured in ({"secret": STRIPE_SECRET}, {"secret": STRIPE_OLD_SECRET}):
        preset("stripe", **configured).verify({"stripe-signature": rotated}, BODY, NOW)
    both = preset("stripe", secrets=[STRIPE_OLD_SECRET, STRIPE_SECRET])
    for secret in (STRIPE_SECRET, STRIPE_OLD_SECRET):
        both.verify({"stripe-signature": stripe_header(secret=secret)}, BODY, NOW)


@pytest.mark.parametrize(
    "header",
    [
        stripe_header(),
        f"{stripe_header()},{stripe_v1(BODY, STRIPE_OLD_SECRET)}",
        f"t={NOW},{stripe_v1(BODY, STRIPE_OLD_SECRET)},{stripe_v1(BODY, STRIPE_SECRET)}",
        f"t={NOW},v0=ignored,{stripe_v1(BODY, STRIPE_SECRET)}",
        stripe_header(body=BODY + b"\n"),
        stripe_header(timestamp=NOW - 1),
        stripe_header(secret=STRIPE_OLD_SECRET),
        f"t={NOW}",
        f"t={NOW},v0={'ab' * 32}",
        stripe_v1(BODY, STRIPE_SECRET),
    ],
)
def test_stripe_preset_agrees_with_stripes_own_verifier(header: str) -> None:
    """Both ways: whatever `stripe.Webhook.construct_event` accepts we accept, and vice versa.

    Stripe's tolerance uses the wall clock, so it is switched off there and
    `now` is the signed timestamp here: this compares signatures only.
    """
    try:
        stripe.Webhook.construct_event(BODY, header, STRIPE_SECRET, tolerance=0)  # 0: no tolerance check
        stripe_accepts = True
    except stripe.SignatureVerificationError:
        stripe_accepts = False
    try:
        preset("stripe", secret=STRIPE_SECRET).verify({"stripe-signature": header}, BODY, NOW)
        we_accept = True
    except VerificationFailure as failure:
        assert failure.code == SIGNATURE_INVALID
        we_accept = False
    assert we_accept is stripe_accepts


# --- GitHub (by hand: no signer on PyPI) ---------------------------------------------


def test_github_documented_test_vector() -> None:
    """The example from GitHub's "Validating webhook deliveries" page."""
    verifier = preset("github", secret="It's a Secret to Everybody")
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verifier.verify({"x-hub-signature-256": signature}, b"Hello, World!", NOW)
    assert code_of(verifier, {"x-hub-signature-256": signature}, b"Hello, World?") == SIGNATURE_INVALID


def test_github_signs_the_body_only_and_ignores_the_legacy_sha1_header() -> None:
    secret = "gh-webhook-secret"
    digest = hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    verifier = preset("github", secret=secret)
    verifier.verify({"x-hub-signature-256": f"sha256={digest}"}, BODY, NOW + 10**6)  # no timestamp, no tolerance
    sha1 = hmac.new(secret.encode(), BODY, hashlib.sha1).hexdigest()
    assert code_of(verifier, {"x-hub-signature": f"sha1={sha1}"}) == SIGNATURE_INVALID
    assert code_of(preset("github", secret="other"), {"x-hub-signature-256": f"sha256={digest}"}) == SIGNATURE_INVALID


# --- Shopify (by hand: no signer on PyPI) --------------------------------------------


def test_shopify_base64_over_the_body() -> None:
    secret = "shpss_0123456789abcdef"
    signature = base64.b64encode(hmac.new(secret.encode(), BODY, hashlib.sha256).digest()).decode()
    verifier = preset("shopify", secret=secret)
    verifier.verify({"x-shopify-hmac-sha256": signature}, BODY, NOW)
    assert code_of(verifier, {"x-shopify-hmac-sha256": signature}, BODY + b" ") == SIGNATURE_INVALID
    hex_signature = hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
    assert code_of(verifier, {"x-shopify-hmac-sha256": hex_signature}) == SIGNATURE_INVALID


# --- Slack ---------------------------------------------------------------------------

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_BODY = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&command=%2Fwebhook-collect&text=hello"


class FixedClock(Clock):
    def __init__(self, now: float):
        self._now = now

    def now(self) -> float:
        return self._now


def slack_headers(body: bytes = SLACK_BODY, secret: str = SLACK_SECRET, timestamp: int = NOW) -> dict[str, str]:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature is not None
    return {"x-slack-signature": signature, "x-slack-request-timestamp": str(timestamp)}


def test_slack_accepts_what_slack_sdk_signs_and_verifies() -> None:
    headers = slack_headers()
    assert SignatureVerifier(SLACK_SECRET, clock=FixedClock(NOW)).is_valid_request(SLACK_BODY, headers)
    preset("slack", secret=SLACK_SECRET).verify(headers, SLACK_BODY, NOW)


def test_slack_rejections() -> None:
    verifier = preset("slack", secret=SLACK_SECRET)
    assert code_of(verifier, slack_headers(), SLACK_BODY + b"&admin=1") == SIGNATURE_INVALID
    assert code_of(verifier, slack_headers(secret="0" * 32), SLACK_BODY) == SIGNATURE_INVALID
    assert code_of(verifier, slack_headers(), SLACK_BODY, now=NOW + 301) == TIMESTAMP_OUT_OF_TOLERANCE
    assert code_of(verifier, slack_headers(), SLACK_BODY, now=NOW - 301) == TIMESTAMP_OUT_OF_TOLERANCE
    headers = slack_headers()
    del headers["x-slack-request-timestamp"]
    assert code_of(verifier, headers, SLACK_BODY) == SIGNATURE_INVALID


# --- Standard Webhooks and Svix ------------------------------------------------------

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_WHSEC = "whsec_" + base64.b64encode(b"the previous key, 24 bytes").decode()


def standard_sign(
    secret: str, body: bytes = BODY, msg_id: str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", timestamp: int = NOW
) -> str:
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return standardwebhooks.Webhook(secret).sign(msg_id, when, body.decode())


@pytest.mark.parametrize("prefix", ["webhook", "svix"])
def test_standard_webhooks_accepts_the_libraries_signature(prefix: str) -> None:
    name = "standard-webhooks" if prefix == "webhook" else "svix"
    headers = {
        f"{prefix}-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        f"{prefix}-timestamp": str(NOW),
        f"{prefix}-signature": standard_sign(WHSEC),
    }
    verifier = preset(name, secret=WHSEC)
    verifier.verify(headers, BODY, NOW)
    assert code_of(verifier, {**headers, f"{prefix}-id": "msg_other"}) == SIGNATURE_INVALID
    assert code_of(verifier, headers, BODY + b" ") == SIGNATURE_INVALID
    assert code_of(verifier, headers, now=NOW + 301) == TIMESTAMP_OUT_OF_TOLERANCE
    assert code_of(verifier, headers, now=NOW - 301) == TIMESTAMP_OUT_OF_TOLERANCE
    assert code_of(preset(name, secret=OLD_WHSEC), headers) == SIGNATURE_INVALID


def test_standard_webhooks_rotation_space_separated_signatures() -> None:
    """`webhook-signature: v1,<old> v1,<new>` (plus an ed25519 `v1a,` entry a verifier must skip)."""
    now = int(datetime.now(tz=UTC).timestamp())
    msg_id = "msg_rotation"
    signatures = [standard_sign(secret, msg_id=msg_id, timestamp=now) for secret in (OLD_WHSEC, WHSEC)]
    header = " ".join(["v1a,c2lnbmF0dXJl", *signatures])
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": header}
    # The library itself accepts this header (it checks against the wall clock, hence `now`)...
    standardwebhooks.Webhook(WHSEC).verify(BODY, headers)
    # ...and so do we, with either secret configured or both.
    preset("standard-webhooks", secret=WHSEC).verify(headers, BODY, now)
    preset("standard-webhooks", secret=OLD_WHSEC).verify(headers, BODY, now)
    preset("standard-webhooks", secrets=[OLD_WHSEC, WHSEC]).verify(headers, BODY, now)


@pytest.mark.parametrize("secret", ["whsec_!!!!", "whsec_", "whsec_ab$d"])
def test_standard_webhooks_refuses_a_bad_whsec_secret(secret: str) -> None:
    with pytest.raises(VerificationConfigError) as caught:
        compile_verification({"preset": "standard-webhooks", "secret": secret})
    assert caught.value.path == "$.secret"


# Standard Webhooks' asymmetric scheme: `v1a,<base64 Ed25519 signature>` of the same message, checked with the
# sender's public key (`whpk_…`). The standardwebhooks library does not sign v1a, so the private key signs here
# (PyCA cryptography), as the specification describes.
SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"flowhook test signing key").digest())
OTHER_SIGNING_KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"someone else").digest())


def whpk(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "whpk_" + base64.b64encode(raw).decode()


def v1a(private: Ed25519PrivateKey, msg_id: str, timestamp: int, body: bytes = BODY) -> str:
    return "v1a," + base64.b64encode(private.sign(f"{msg_id}.{timestamp}.".encode() + body)).decode()


@pytest.mark.parametrize("prefix", ["webhook", "svix"])
def test_standard_webhooks_public_keys_verify_v1a_signatures(prefix: str) -> None:
    name = "standard-webhooks" if prefix == "webhook" else "svix"
    msg_id = "msg_asymmetric"
    header = f"v1,{standard_sign(WHSEC, msg_id=msg_id).removeprefix('v1,')} {v1a(SIGNING_KEY, msg_id, NOW)}"
    headers = {f"{prefix}-id": msg_id, f"{prefix}-timestamp": str(NOW), f"{prefix}-signature": header}
    verifier = preset(name, secret=whpk(SIGNING_KEY))
    verifier.verify(headers, BODY, NOW)
    assert code_of(verifier, headers, BODY + b" ") == SIGNATURE_INVALID
    assert code_of(verifier, {**headers, f"{prefix}-id": "msg_other"}) == SIGNATURE_INVALID
    assert code_of(verifier, headers, now=NOW + 301) == TIMESTAMP_OUT_OF_TOLERANCE
    assert code_of(preset(name, secret=whpk(OTHER_SIGNING_KEY)), headers) == SIGNATURE_INVALID
    # Only v1a entries count for a public key, however the v1 HMAC in the same header reads.
    assert code_of(verifier, {**headers, f"{prefix}-signature": header.split(" ")[0]}) == SIGNATURE_INVALID
    # Rotation: either key of a pair verifies, and the shared-secret preset still reads the v1 entry.
    preset(name, secrets=[whpk(OTHER_SIGNING_KEY), whpk(SIGNING_KEY)]).verify(headers, BODY, NOW)
    preset(name, secret=WHSEC).verify(headers, BODY, NOW)


def test_a_v1a_signature_of_the_wrong_length_or_encoding_is_no_candidate() -> None:
    headers = {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1a,c2lnbmF0dXJl v1a,!!"}
    assert code_of(preset("standard-webhooks", secret=whpk(SIGNING_KEY)), headers) == SIGNATURE_INVALID


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"preset": "standard-webhooks", "secret": "whpk_" + base64.b64encode(b"short").decode()}, "$.secret"),
        ({"preset": "standard-webhooks", "secrets": [WHSEC, "whpk_" + "A" * 43]}, "$.secrets[1]"),
        (
            {
                "algorithm": "ed25519",
                "digest": "base64",
                "secret": "x" * 32,
                "signature": {"header": "X-Signature"},
            },
            "$.secretEncoding",
        ),
    ],
)
def test_public_key_configs_that_cannot_work_are_refused(config: dict[str, object], path: str) -> None:
    with pytest.raises(VerificationConfigError) as caught:
        compile_verification(config)
    assert caught.value.path == path


def test_a_header_stuffed_with_signatures_is_refused_before_any_is_checked() -> None:
    """Every candidate is checked against every key; Ed25519 checks are costly, so their number is capped."""
    keys = [whpk(Ed25519PrivateKey.from_private_bytes(hashlib.sha256(bytes([n])).digest())) for n in range(10)]
    verifier = preset("standard-webhooks", secrets=keys)
    stuffed = " ".join([v1a(OTHER_SIGNING_KEY, "m", NOW)] * 11)
    headers = {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": stuffed}
    with pytest.raises(VerificationFailure, match="11 signatures in header webhook-signature; at most 10"):
        verifier.verify(headers, BODY, NOW)


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"preset": "stripe", "secret": "whpk_" + "A" * 43}, "$.secret"),  # a public key as an HMAC key: forgeable
        ({"preset": "github", "secrets": ["real-secret", "whpk_" + "A" * 43]}, "$.secrets[1]"),
        (
            {"secret": "whpk_" + "A" * 43, "secretEncoding": "whpk", "signature": {"header": "X-Sig"}},
            "$.secretEncoding",
        ),
        (
            {"secret": WHSEC, "secretEncoding": "whsec", "algorithm": "ed25519", "signature": {"header": "X-Sig"}},
            "$.secretEncoding",
        ),
    ],
)
def test_public_keys_and_shared_secrets_are_not_mixed_up(config: dict[str, object], path: str) -> None:
    with pytest.raises(VerificationConfigError) as caught:
        compile_verification(config)
    assert caught.value.path == path


def test_a_full_ed25519_config_without_a_preset() -> None:
    body = b"hello"
    signature = base64.b64encode(SIGNING_KEY.sign(body)).decode()
    config = {
        "algorithm": "ed25519",
        "digest": "base64",
        "secretEncoding": "whpk",
        "secret": whpk(SIGNING_KEY),
        "signature": {"header": "X-Signature"},
    }
    verifier = compile_verification(config)
    assert verifier is not None
    verifier.verify({"x-signature": signature}, body, NOW)
    assert code_of(verifier, {"x-signature": signature}, b"hello!") == SIGNATURE_INVALID


def test_stripe_secret_is_the_utf8_text_not_whsec_base64() -> None:
    """Stripe and Svix secrets both start with whsec_; only Svix's is base64 key bytes."""
    verifier = preset("stripe", secret=WHSEC)
    verifier.verify({"stripe-signature": stripe_header(secret=WHSEC)}, BODY, NOW)
