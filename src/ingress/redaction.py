"""Hide secret-bearing header values before a request is written to the request log.

Header names are matched by pattern rather than by a list of vendors, so the
long tail (`X-Gitlab-Token`, `X-Twilio-Signature`, `Ocp-Apim-Subscription-Key`,
`X-Amz-Security-Token`, …) is covered too; over-redacting a harmless header
costs a little debugging, under-redacting leaks a credential into the log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Final

REDACTED: Final = "[redacted]"

_SECRET_BEARING: Final = re.compile(
    r"auth|cookie|token|secret|passw|signature|hmac|credential|session|jwt"
    r"|(?<!idempotency-)key\b"  # x-api-key, x-functions-key, …; not idempotency-key
)


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
