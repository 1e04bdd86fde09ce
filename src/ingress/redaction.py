"""Hide secret-bearing header and query parameter values before a request is written to the request log.

Header names are matched by pattern rather than by a list of vendors, so the
long tail (`X-Gitlab-Token`, `X-Twilio-Signature`, `Ocp-Apim-Subscription-Key`,
`X-Amz-Security-Token`, …) is covered too; over-redacting a harmless header
costs a little debugging, under-redacting leaks a credential into the log.
Query parameter names (`?token=…`, `?api_key=…`, Azure SAS's `?sig=…`) are
matched by the same pattern, and `code` (OAuth's authorization code) too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Final
from urllib.parse import unquote_plus

REDACTED: Final = "[redacted]"

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
