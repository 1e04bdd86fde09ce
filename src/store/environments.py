"""Environments: namespaces for flows, triggers, credentials and their logs (`/v1/{env}/…`).

Everything else refers to an environment by id; a new one starts empty, with
its settings at their defaults (an empty `settings`), like `default` at first start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.idempotent import insert_or_skip
from store.tables import environments

DEFAULT_ENVIRONMENT = "default"


@dataclass(frozen=True)
class Environment:
    id: str
    name: str
    settings: dict[str, Any]
    created_at: datetime


def create_environment(conn: Connection, env_id: str, name: str) -> Environment | None:
    """The new environment, or None when the id is taken (by a concurrent writer too: no check-then-insert race)."""
    environment = Environment(env_id, name, {}, utcnow())
    insert = insert_or_skip(conn.dialect, environments).values(**environment.__dict__).returning(environments.c.id)
    return environment if conn.execute(insert).first() is not None else None


def get_environment(conn: Connection, env_id: str) -> Environment | None:
    row = conn.execute(sa.select(environments).where(environments.c.id == env_id)).first()
    return Environment(**row._mapping) if row else None


def list_environments(conn: Connection) -> list[Environment]:
    """Oldest first, so `default` leads."""
    query = sa.select(environments).order_by(environments.c.created_at, environments.c.id)
    return [Environment(**row._mapping) for row in conn.execute(query)]
