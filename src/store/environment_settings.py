"""Per-environment settings (`/v1/{env}/settings`), kept in `environments.settings`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import environments

#: Each setting with its allowed values; the first is the default.
CHOICES: dict[str, tuple[str, ...]] = {
    # Whether analytics queries show events of test runs.
    "testAnalytics": ("include", "exclude"),
}


def with_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    return {name: stored.get(name, choices[0]) for name, choices in CHOICES.items()}


def get_settings(conn: Connection, environment_id: str) -> dict[str, Any] | None:
    """The environment's settings with defaults filled in; None if there is no such environment."""
    query = sa.select(environments.c.settings).where(environments.c.id == environment_id)
    row = (conn.execute(query)).first()
    return with_defaults(row[0] or {}) if row else None


def update_settings(conn: Connection, environment_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
    """Merge `changes` (already checked against CHOICES) into the stored settings."""
    query = sa.select(environments.c.settings).where(environments.c.id == environment_id)
    row = (conn.execute(query)).first()
    if row is None:
        return None
    merged = {**(row[0] or {}), **changes}
    conn.execute(sa.update(environments).where(environments.c.id == environment_id).values(settings=merged))
    return with_defaults(merged)
