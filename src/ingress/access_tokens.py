"""OAuth2 access tokens: issued by `/oauth/token`, required by the Action Flow API.

Tokens are opaque (`fh_at_` + 256 random bits); the store keeps only their
SHA-256 with the credential, environment, roles and expiry, and a request's
token is looked up there (then trusted for a moment, see ingress.token_cache).
That buys what a signed token cannot: revoking a credential ends its tokens.

The admin token and access tokens are separate worlds: the admin token is
no access token (it is not in the token table) and an access token is no
admin token (its hash is not the admin hash), so each side refuses the other.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from starlette.requests import Request

from ingress.auth import token_hash
from ingress.errors import ApiError
from ingress.services import Services
from store.clock import utcnow
from store.credentials import AccessToken, Credential, find_access_token, insert_access_token

TOKEN_PREFIX = "fh_at_"

#: What each role lets a token do.
ROLES: dict[str, str] = {"events": "start Action Flows (/start and /test) and send events"}


def _challenge(error: str | None = None) -> dict[str, str]:
    """RFC 6750 §3: the scheme, and the error code once a token was presented."""
    value = 'Bearer realm="flowhook"' + (f', error="{error}"' if error else "")
    return {"WWW-Authenticate": value}


async def issue_token(services: Services, credential: Credential, roles: list[str]) -> tuple[str, int] | None:
    """A new token and its lifetime in seconds; None if the credential was revoked meanwhile."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    lifetime = services.settings.access_token_seconds
    issued_at = utcnow()
    expires_at = issued_at + timedelta(seconds=lifetime)
    stored = await services.store.write(
        lambda conn: insert_access_token(conn, credential, token_hash(token), roles, issued_at, expires_at)
    )
    return (token, lifetime) if stored else None


async def require_token(request: Request, role: str) -> AccessToken:
    """The request's access token, valid for the path's environment and holding `role`; 401/403 otherwise."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        message = "send an OAuth2 access token from POST /oauth/token as 'Authorization: Bearer <token>'"
        raise ApiError(401, "unauthorized", message, headers=_challenge())
    services: Services = request.app.state.services
    now, presented_hash = utcnow(), token_hash(presented)
    token = services.tokens.get(presented_hash, now)
    if token is None:
        revocations = services.tokens.revocations
        token = await services.store.read(lambda conn: find_access_token(conn, presented_hash, now))
        if token is not None:
            services.tokens.put(presented_hash, token, revocations)
    if token is None:
        message = "the access token is unknown, expired or revoked (the admin token is not accepted here)"
        raise ApiError(401, "invalid_token", message, headers=_challenge("invalid_token"))
    if token.environment_id != request.path_params["env"]:
        message = "the access token was issued for another environment"
        raise ApiError(403, "environment_mismatch", message, headers=_challenge("insufficient_scope"))
    if not token.allows(role):
        message = f"the access token lacks the {role!r} role"
        raise ApiError(403, "insufficient_scope", message, headers=_challenge("insufficient_scope"))
    return token
