"""Small service-wide values (e.g. the admin token's hash), keyed by name."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import service_state


def get_value(conn: Connection, key: str) -> str | None:
    row = conn.execute(sa.select(service_state.c.value).where(service_state.c.key == key)).first()
    return row[0] if row else None


def set_value_if_absent(conn: Connection, key: str, value: str) -> bool:
    """True when this call stored `value`; False when the key already existed."""
    if get_value(conn, key) is not None:
        return False
    conn.execute(sa.insert(service_state).values(key=key, value=value))
    return True
