"""A Marketo trigger's API keys: the current one and, for a while after a roll, the one before it.

Marketo holds the key in its Service Providers menu, so a new key cannot
reach it at the moment it is made. Rolling a key therefore may keep the old
one working for an overlap the admin chooses (none, the default, for a key
that leaked; up to seven days, as Stripe's key roll allows), long enough to
paste the new one into Marketo. Both are stored in the trigger's
`verification` (`secret`, `previousSecret`, `previousExpiresAt`) and never
shown again after the answer that made them.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

MAX_OVERLAP = timedelta(days=7)


def new_key() -> dict[str, Any]:
    """A fresh trigger's keys: one current key, nothing before it."""
    return {"secret": secrets.token_urlsafe(32)}


def rolled(keys: dict[str, Any] | None, overlap: timedelta, now: datetime) -> dict[str, Any]:
    """A new current key; the current one stays valid until `now + overlap` (not at all for no overlap).

    A key still in its overlap from an earlier roll is dropped: only the key
    just replaced is what Marketo may still be sending.
    """
    fresh = new_key()
    current = (keys or {}).get("secret")
    if overlap > timedelta(0) and isinstance(current, str):
        fresh |= {"previousSecret": current, "previousExpiresAt": (now + overlap).isoformat()}
    return fresh


def previous_expires_at(keys: dict[str, Any] | None, now: datetime) -> datetime | None:
    """When the replaced key stops working, if it still works at `now`."""
    expires = (keys or {}).get("previousExpiresAt")
    if not isinstance(expires, str):
        return None
    moment = datetime.fromisoformat(expires)
    return moment if now < moment else None


def accepts(keys: dict[str, Any] | None, given: str, now: datetime) -> bool:
    """Whether `given` is the current key, or the replaced one within its overlap; every candidate is compared
    in constant time, and all of them are compared whichever matches."""
    keys = keys or {}
    candidates = [keys.get("secret")]
    if previous_expires_at(keys, now) is not None:
        candidates.append(keys.get("previousSecret"))
    matched = False
    for candidate in candidates:
        if isinstance(candidate, str) and candidate:
            matched |= hmac.compare_digest(given.encode(), candidate.encode())
    return matched
