"""Verification configs of well-known webhook senders.

A preset is the full verification config minus the secrets: the user writes
`{"preset": "stripe", "secret": "whsec_…"}` and `compile_verification` merges
the two. Each entry follows the sender's own documentation and is tested
against the sender's own library where one exists on PyPI.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final


def _standard_webhooks(prefix: str, *, public_key: bool = False) -> dict[str, Any]:
    """Standard Webhooks and Svix differ only in their header prefix.

    `<prefix>-signature: v1,<base64> v1a,<base64>` is a space-separated list of
    pairs, so the value is split on " " and the prefix picks the signatures of
    one scheme: "v1," an HMAC-SHA256 with a shared secret (`whsec_` + base64 of
    the key bytes), "v1a," an Ed25519 signature checked with the sender's
    public key (`whpk_` + base64 of its 32 bytes).
    """
    return {
        "algorithm": "ed25519" if public_key else "sha256",
        "digest": "base64",
        "signature": {
            "header": f"{prefix}-signature",
            "parsePrefix": "v1a," if public_key else "v1,",
            "separator": " ",
        },
        "timestamp": {"header": f"{prefix}-timestamp"},
        "template": f"[header:{prefix}-id].[timestamp].[payload]",
        "toleranceSeconds": 300,
        "secretEncoding": "whpk" if public_key else "whsec",
    }


PRESETS: Final[MappingProxyType[str, dict[str, Any]]] = MappingProxyType(
    {
        # Stripe-Signature: t=1700000000,v1=<hex>,v1=<hex during rotation>
        # The whole "whsec_…" string is the HMAC key (utf8, not base64).
        "stripe": {
            "algorithm": "sha256",
            "digest": "hex",
            "signature": {"header": "Stripe-Signature", "parsePrefix": "v1="},
            "timestamp": {"header": "Stripe-Signature", "parsePrefix": "t="},
            "template": "[timestamp].[payload]",
            "toleranceSeconds": 300,
        },
        # X-Hub-Signature-256: sha256=<hex> over the body; no timestamp.
        "github": {
            "algorithm": "sha256",
            "digest": "hex",
            "signature": {"header": "X-Hub-Signature-256", "parsePrefix": "sha256="},
            "template": "[payload]",
        },
        # X-Shopify-Hmac-Sha256: <base64> over the body; no timestamp.
        "shopify": {
            "algorithm": "sha256",
            "digest": "base64",
            "signature": {"header": "X-Shopify-Hmac-Sha256"},
            "template": "[payload]",
        },
        # X-Slack-Signature: v0=<hex> over "v0:<X-Slack-Request-Timestamp>:<body>".
        "slack": {
            "algorithm": "sha256",
            "digest": "hex",
            "signature": {"header": "X-Slack-Signature", "parsePrefix": "v0="},
            "timestamp": {"header": "X-Slack-Request-Timestamp"},
            "template": "v0:[timestamp]:[payload]",
            "toleranceSeconds": 300,
        },
        "standard-webhooks": _standard_webhooks("webhook"),
        "svix": _standard_webhooks("svix"),
    }
)

#: The same senders' asymmetric scheme, chosen when every configured key is a `whpk_` public key.
PUBLIC_KEY_PRESETS: Final[MappingProxyType[str, dict[str, Any]]] = MappingProxyType(
    {
        "standard-webhooks": _standard_webhooks("webhook", public_key=True),
        "svix": _standard_webhooks("svix", public_key=True),
    }
)
PUBLIC_KEY_PREFIX: Final = "whpk_"
