"""Environments: namespaces for flows, triggers and their logs (`/v1/{env}/…`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.tables import environments

DEFAULT_ENVIRONMENT = "default"


@dataclass(frozen=True)
class Environment:
    id: str
    name: str
    settings: dict[str, Any]
    created_at: datetime


def ensure_environment(conn: Connection, env_id: str, name: str) -> bool:
    """Create the environment unless it exists; True when created."""
    if get_environment(conn, env_id) is not None:
        return False
    conn.execute(sa.insert(environments).values(id=env_id, name=name, settings={}, created_at=utcnow()))
    return True


def get_environment(conn: Connection, env_id: str) -> Environment | None:
    row = conn.execute(sa.select(environments).where(environments.c.id == env_id)).first()
    return Environment(**row._mapping) if row else None
