"""Identifiers: a readable kind prefix and enough randomness not to be guessed."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """`flw_3f9a…` — 96 random bits, hex."""
    return f"{prefix}_{secrets.token_hex(12)}"


def new_hook_id() -> str:
    """The secret part of a webhook URL: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)
