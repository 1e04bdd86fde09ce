"""`POST /oauth/token`: the OAuth2 client credentials grant (RFC 6749 §4.4).

The client authenticates with HTTP Basic or with `client_id` and
`client_secret` form fields (§2.3.1), never both. Errors use the RFC's own
body (`{"error", "error_description"}`, §5.2), not the API's error shape, so
that any OAuth2 client library understands them; `invalid_client` is a 401
with a `WWW-Authenticate: Basic` challenge. Every answer carries
`Cache-Control: no-store`. Failed client authentications are limited
(ingress.token_attempts): past the limit, 429 `temporarily_unavailable` with
`Retry-After`, the code RFC 6749 §4.1.2.1 has for a server that cannot take
the request now; a store that cannot be reached is the same code, a 503 with
`Retry-After` (ingress.errors).
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import Response

from ingress.access_tokens import issue_token
from ingress.allowlist import client_ip
from ingress.body import BodyTimedOut, BodyTooLarge, read_body
from ingress.client_secrets import check_secret
from ingress.errors import RETRY_LATER, STORE_ERRORS, STORE_UNAVAILABLE, noted_unavailable
from ingress.jsonio import json_response
from ingress.services import Services
from ingress.token_attempts import TokenAttempts, TooManyAttempts
from mapper.request import media_type
from store.credentials import Credential, get_credential

MAX_FORM_BYTES = 16 * 1024
FORM = "application/x-www-form-urlencoded"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="flowhook"'}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: its code, description and status."""

    def __init__(self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def response(self) -> Response:
        headers = {**NO_STORE, **(BASIC_CHALLENGE if self.status == 401 else {}), **self.headers}
        return json_response({"error": self.error, "error_description": self.description}, self.status, headers)


def invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


@dataclass(frozen=True)
class ClientAuthentication:
    client_id: str
    client_secret: str


async def token_endpoint(request: Request) -> Response:
    try:
        body = await _grant(request)
    except OAuthError as error:
        return error.response()
    except STORE_ERRORS as error:
        if not noted_unavailable(error, "POST /oauth/token"):
            raise
        return OAuthError("temporarily_unavailable", STORE_UNAVAILABLE, 503, RETRY_LATER).response()
    return json_response(body, 200, NO_STORE)


async def _grant(request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    form = await _form(request, services.settings.body_timeout_seconds)
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", "only grant_type=client_credentials is supported")
    client = _client_authentication(request.headers.get("authorization"), form)
    if "\x00" in client.client_id:  # no client id holds NUL, and PostgreSQL cannot even look one up
        raise invalid_client("client authentication failed")
    credential = await services.store.read(lambda conn: get_credential(conn, client.client_id))
    peer = request.client.host if request.client else ""
    address = client_ip(peer, request.headers, services.trusted_proxies, services.settings.forwarded_header)
    if not await _authenticated(services.token_attempts, client, credential, address):
        raise invalid_client("client authentication failed")
    assert credential is not None
    roles = _granted_roles(form.get("scope"), credential.roles)
    issued = await issue_token(services, credential, roles)
    if issued is None:
        raise invalid_client("client authentication failed")
    token, lifetime = issued
    return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": " ".join(roles)}


async def _authenticated(
    attempts: TokenAttempts, client: ClientAuthentication, credential: Credential | None, address: str
) -> bool:
    """Whether the secret is the credential's: one attempt (a 429 past the limit, before hashing), limited and
    hashed alike whether `credential` exists or not, so that no answer tells which client ids exist."""
    try:
        attempt = attempts.begin(client.client_id, client.client_secret, address)
    except TooManyAttempts as refused:
        retry = {"Retry-After": str(refused.retry_after)}
        raise OAuthError("temporarily_unavailable", str(refused), 429, retry) from None
    matches = False
    try:
        matches = await check_secret(client.client_secret, credential.secret_hash if credential else None)
    finally:
        attempts.end(attempt, succeeded=matches)
    return matches


async def _form(request: Request, timeout: float) -> dict[str, str]:
    """The form fields; empty ones count as absent (§3.1), repeated ones are refused."""
    if media_type(request.headers.get("content-type")) != FORM:
        raise OAuthError("invalid_request", f"send the parameters as {FORM}")
    try:
        raw = await read_body(request.receive, MAX_FORM_BYTES, request.headers.get("content-length"), timeout)
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except BodyTooLarge:
        raise OAuthError("invalid_request", f"the body exceeds {MAX_FORM_BYTES} bytes") from None
    except BodyTimedOut:
        raise OAuthError("invalid_request", f"the body did not arrive within {timeout:g} s") from None
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the body is not a valid form") from None
    repeated = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
    if repeated:
        raise OAuthError("invalid_request", f"parameter {repeated[0]!r} is repeated")
    return {name: value for name, value in pairs if value}


def _client_authentication(authorization: str | None, form: dict[str, str]) -> ClientAuthentication:
    """HTTP Basic (§2.3.1: id and secret form-encoded, then base64) or the two form fields."""
    if authorization:
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not Basic and form fields")
        return _basic(authorization, form.get("client_id"))
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    if client_id is None or client_secret is None:
        raise invalid_client("authenticate with HTTP Basic or the client_id and client_secret fields")
    return ClientAuthentication(client_id, client_secret)


def _basic(authorization: str, form_client_id: str | None) -> ClientAuthentication:
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise invalid_client("the Authorization header must use the Basic scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("the Basic credentials are not valid base64") from None
    raw_id, colon, raw_secret = decoded.partition(":")
    if not colon or not raw_id or not raw_secret:
        raise invalid_client("the Basic credentials must be client_id:client_secret")
    client_id = unquote_plus(raw_id)
    if form_client_id is not None and form_client_id != client_id:
        raise OAuthError("invalid_request", "client_id differs from the Basic credentials")
    return ClientAuthentication(client_id, unquote_plus(raw_secret))


def _granted_roles(scope: str | None, allowed: list[str]) -> list[str]:
    """The requested scope (space-separated roles), all of the credential's roles when absent."""
    if scope is None:
        return list(allowed)
    requested = list(dict.fromkeys(scope.split()))
    refused = [role for role in requested if role not in allowed]
    if refused or not requested:
        raise OAuthError("invalid_scope", f"this client may request only: {' '.join(allowed)}")
    return requested
