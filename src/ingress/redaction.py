"""Hide secret-bearing header and query parameter values before a request is written to the request log,
and in what a mapping preview echoes of the request it ran on.

Header names are matched by pattern rather than by a list of vendors, so the
long tail (`X-Gitlab-Token`, `X-Twilio-Signature`, `Ocp-Apim-Subscription-Key`,
`X-Amz-Security-Token`, …) is covered too; over-redacting a harmless header
costs a little debugging, under-redacting leaks a credential into the log.
Query parameter names (`?token=…`, `?api_key=…`, Azure SAS's `?sig=…`) are
matched by the same pattern, and `code` (OAuth's authorization code) too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus

REDACTED: Final = "[redacted]"
#: A secret value shorter than this is hidden only where a string is exactly it: as a substring, a `?sig=1`
#: would turn every 1 of an answer into [redacted], and so short a value guards nothing.
MIN_SUBSTRING_SECRET: Final = 4

_SECRET_BEARING: Final = re.compile(
    r"auth|cookie|token|secret|passw|signature|hmac|credential|session|jwt|bearer|pwd|cert"
    r"|pass(?:code|phrase)?(?![a-z])"  # x-pass, x-passcode; not x-passenger-count
    r"|(?<![a-z])(?:sig|t?otp)(?![a-z])"  # x-sig, ?sig= (Azure SAS), x-otp, x-totp; not x-signal, x-design
    r"|(?<!idempotency-)key\d*\b"  # x-api-key, x-functions-key, x-apikey2, …; not idempotency-key, key_id
)
#: Query parameters secret by their whole name only: as a word of a header name it is harmless (x-error-code).
_SECRET_PARAMETERS: Final = frozenset({"code"})  # OAuth's authorization code (RFC 6749 §4.1.2)


@lru_cache(maxsize=1024)  # every logged request asks again for the same few names
def is_secret_bearing(name: str) -> bool:
    """True for a header whose value may carry a credential (name compared case-insensitively)."""
    return _SECRET_BEARING.search(name.lower()) is not None


def redact_headers(headers: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """A copy of `headers` with secret-bearing values replaced by "[redacted]".

    `extra` names more headers to hide, e.g. `Verifier.headers_to_redact`
    (the configured signature and timestamp headers).
    """
    also = {name.lower() for name in extra}
    return {
        name: REDACTED if name.lower() in also or is_secret_bearing(name) else value for name, value in headers.items()
    }


def redact_query(query: str) -> str:
    """`query` with the values of secret-bearing parameters replaced by "[redacted]", the rest byte for byte.

    Senders put tokens in the URL too (`?token=…`, `?api_key=…`). Order,
    other parameters, a name without a value and an empty value are kept
    as sent: only what could be a credential goes.
    """
    if not query:  # most webhooks: nothing to split on their path
        return query
    return "&".join(_redact_parameter(parameter) for parameter in query.split("&"))


def redact_path(path: str) -> str:
    """A request target (`/x?token=…`, as a pasted sample gives it) with its query redacted by `redact_query`."""
    resource, mark, query = path.partition("?")
    return f"{resource}{mark}{redact_query(query)}"


def _redact_parameter(parameter: str) -> str:
    name, _, value = parameter.partition("=")
    return f"{name}={REDACTED}" if value and _is_secret_parameter(name) else parameter


@lru_cache(maxsize=1024)
def _is_secret_parameter(name: str) -> bool:
    """`is_secret_bearing` for a parameter name as sent (`api%5Fkey`, `access+token`), or `code`."""
    decoded = unquote_plus(name)
    return decoded.lower() in _SECRET_PARAMETERS or is_secret_bearing(decoded)


def request_secrets(request: Mapping[str, Any], extra: Iterable[str] = ()) -> frozenset[str]:
    """The secret values a mapping's `request` (SPEC §2) holds: those of its secret-bearing headers (and of
    the headers `extra` names), of its secret query parameters, and of those of a query its `path` carries.

    A request object given whole (the preview API's) is read as far as it has the SPEC shape."""
    return frozenset(value for value in _secret_values(request, {name.lower() for name in extra}) if value)


def _secret_values(request: Mapping[str, Any], extra: set[str]) -> Iterator[str]:
    headers, query, path = request.get("headers"), request.get("query"), request.get("path")
    if isinstance(headers, Mapping):
        secret = (value for name, value in headers.items() if name.lower() in extra or is_secret_bearing(name))
        yield from _strings(secret)
    if isinstance(query, Mapping):
        yield from _strings(value for name, value in query.items() if _is_secret_parameter(name))
    if isinstance(path, str) and "?" in path:
        parameters = parse_qsl(path.partition("?")[2], keep_blank_values=True)
        yield from (value for name, value in parameters if _is_secret_parameter(name))


def _strings(values: Iterable[Any]) -> Iterator[str]:
    """The strings of `values`, a list's one by one (a query parameter sent several times)."""
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (item for item in value if isinstance(item, str))


def redact_values(data: Any, secrets: frozenset[str]) -> Any:
    """`data` (JSON) with every occurrence of a value of `secrets` in its strings, keys included, replaced by
    "[redacted]"; a secret shorter than `MIN_SUBSTRING_SECRET` only where a string is exactly it.

    For what is echoed of a request's secrets after code that saw them ran on it (a mapping preview's
    output, console lines, error): a value derived from a secret (a slice, a decoding) is not recognised."""
    if not secrets:
        return data
    searched = sorted((secret for secret in secrets if len(secret) >= MIN_SUBSTRING_SECRET), key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, searched))) if searched else None  # one pass, longest first
    return _redact(data, secrets, pattern)


def _redact(data: Any, secrets: frozenset[str], pattern: re.Pattern[str] | None) -> Any:
    if isinstance(data, str):
        if data in secrets:
            return REDACTED
        return pattern.sub(REDACTED, data) if pattern is not None else data
    if isinstance(data, dict):
        return {_redact(key, secrets, pattern): _redact(value, secrets, pattern) for key, value in data.items()}
    if isinstance(data, list):
        return [_redact(item, secrets, pattern) for item in data]
    return data
