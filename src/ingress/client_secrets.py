"""Client secrets of API credentials: generated here, shown once, kept as a salted scrypt hash.

A secret carries 256 random bits, so even a fast hash could not be brute
forced; scrypt is used anyway so that a leaked database is no shortcut
should a weaker secret ever be stored. The parameters travel with each hash
(`scrypt$n$r$p$salt$hash`), so they can be raised later without breaking
existing credentials. Verification runs on a thread of its own: it takes
tens of milliseconds and must not stall the event loop, nor queue ahead of
the other work of the default thread pool (a flood of bogus token requests
there delayed everything else that uses it); how many attempts reach it is
limited by ingress.token_attempts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

SECRET_PREFIX = "fh_cs_"
CLIENT_ID_PREFIX = "fh_ci_"

_N, _R, _P = 2**14, 8, 1
_KEY_BYTES = 32

# Hashed when a client id is unknown, so a miss takes as long as a wrong secret.
_DECOY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

#: One scrypt at a time (~60 ms of CPU, 16 MiB): a flood of attempts takes one core at most, and waits here.
_HASHING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flowhook-scrypt")


def new_client_id() -> str:
    return CLIENT_ID_PREFIX + secrets.token_hex(12)


def new_client_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    key = _scrypt(secret, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Constant-time check of `secret` against a `hash_secret` value."""
    scheme, n, r, p, salt, key = stored.split("$")
    if scheme != "scrypt":
        return False
    candidate = _scrypt(secret, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(candidate, base64.b64decode(key))


async def check_secret(secret: str, stored: str | None) -> bool:
    """`verify_secret` on the hashing thread; an unknown client (`stored` None) costs the same and fails."""
    matches = await asyncio.get_running_loop().run_in_executor(_HASHING, verify_secret, secret, stored or _DECOY_HASH)
    return matches and stored is not None


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=_KEY_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
