"""Verify a JWT signed with HS256 (RFC 7519), as Salesforce Marketing Cloud signs custom activity calls.

Only HS256 is accepted: the header's `alg` must be exactly that, so a token
saying `none` (no signature) or another algorithm is refused rather than
checked some other way. The signature is compared in constant time; `exp`
and `nbf`, when present, are honoured with a small leeway for clock skew.
No library is needed for this much, and none is added for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

LEEWAY_SECONDS = 60


class JwtInvalid(Exception):
    """Why a token was refused: for the log, never for the sender (it would help forging one)."""


def verify_hs256(token: bytes, secret: str, now: float) -> tuple[dict[str, Any], bytes]:
    """The token's claims and its payload as JSON text, or JwtInvalid saying why not."""
    parts = token.strip().split(b".")
    if len(parts) != 3:
        raise JwtInvalid(f"not a compact JWT: {len(parts)} parts instead of 3")
    header_part, payload_part, signature_part = parts
    header = _json_object(_decoded(header_part, "header"), "header")
    if header.get("alg") != "HS256":
        raise JwtInvalid(f"alg {str(header.get('alg'))[:20]!r} is not HS256")
    expected = hmac.new(secret.encode(), header_part + b"." + payload_part, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _decoded(signature_part, "signature")):
        raise JwtInvalid("the signature does not match the signing secret")
    payload = _decoded(payload_part, "payload")
    claims = _json_object(payload, "payload")
    _check_times(claims, now)
    return claims, payload


def _decoded(part: bytes, name: str) -> bytes:
    """base64url without padding (RFC 7515 §2); a character outside that alphabet is refused."""
    try:
        return base64.b64decode(part + b"=" * (-len(part) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise JwtInvalid(f"the {name} is not base64url") from None


def _json_object(text: bytes, name: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise JwtInvalid(f"the {name} is not JSON") from None
    if not isinstance(value, dict):
        raise JwtInvalid(f"the {name} is not a JSON object")
    return value


def _check_times(claims: dict[str, Any], now: float) -> None:
    for claim in ("exp", "nbf"):
        value = claims.get(claim)
        if claim in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise JwtInvalid(f"{claim} is not a number")
    if "exp" in claims and now > claims["exp"] + LEEWAY_SECONDS:
        raise JwtInvalid("the token has expired (exp)")
    if "nbf" in claims and now < claims["nbf"] - LEEWAY_SECONDS:
        raise JwtInvalid("the token is not valid yet (nbf)")
