"""The admin bearer token of the management API.

Generated at first start and shown once (only its SHA-256 is stored), unless
FLOWHOOK_ADMIN_TOKEN sets it. The token carries 256 random bits, so a plain
hash is enough; presented tokens are compared hash to hash in constant time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import sys
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ingress.errors import ApiError
from store import Store
from store.service_state import get_value, set_value_if_absent

TOKEN_HASH_KEY = "admin_token_sha256"
TOKEN_PREFIX = "fh_admin_"

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flowhook"'}

Endpoint = Callable[[Request], Awaitable[Response]]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def announce_token(token: str) -> None:
    """The one time the generated token is shown."""
    print(f"flowhook: admin token (shown once, store it now): {token}", file=sys.stdout, flush=True)


async def admin_token_hash(
    store: Store, configured: str | None, announce: Callable[[str], None] = announce_token
) -> str:
    """The hash requests are checked against, generating the token on first start."""
    if configured:
        return token_hash(configured)
    generated = TOKEN_PREFIX + secrets.token_urlsafe(32)
    if await store.write(lambda conn: set_value_if_absent(conn, TOKEN_HASH_KEY, token_hash(generated))):
        announce(generated)
    stored = await store.read(lambda conn: get_value(conn, TOKEN_HASH_KEY))
    assert stored is not None
    return stored


class AdminAuth:
    def __init__(self, expected_hash: str) -> None:
        self._expected = expected_hash.encode()

    def check(self, request: Request) -> None:
        """Raise a 401 unless the request carries the admin token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401, "unauthorized", "send the admin token as 'Authorization: Bearer <token>'", headers=CHALLENGE
            )
        if not hmac.compare_digest(token_hash(token.strip()).encode(), self._expected):
            raise ApiError(401, "unauthorized", "the admin token is not valid", headers=CHALLENGE)


def admin_only(endpoint: Endpoint) -> Endpoint:
    """Wrap a management endpoint so it runs only for the admin token."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        request.app.state.services.admin_auth.check(request)
        return await endpoint(request)

    return guarded
