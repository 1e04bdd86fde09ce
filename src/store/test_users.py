"""Test users: who may receive test runs (workbench members and external test users).

A test invocation reaches only these user IDs; everyone else it names is
recorded as ignored and sent nothing, so a draft can never reach a real user.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.clock import utcnow
from store.idempotent import insert_or_skip
from store.tables import test_users

KINDS = ("external", "member")


@dataclass(frozen=True)
class TestUser:
    __test__ = False  # not a pytest test class

    environment_id: str
    user_id: str
    kind: str
    name: str | None
    created_at: datetime


def add_test_user(conn: Connection, environment_id: str, user_id: str, kind: str, name: str | None) -> TestUser | None:
    """The new test user, or None when the ID is one already (by a concurrent writer too: no check-then-insert race)."""
    user = TestUser(environment_id, user_id, kind, name, utcnow())
    insert = insert_or_skip(conn.dialect, test_users).values(**user.__dict__).returning(test_users.c.user_id)
    return user if conn.execute(insert).first() is not None else None


def list_test_users(conn: Connection, environment_id: str) -> list[TestUser]:
    query = (
        sa.select(test_users)
        .where(test_users.c.environment_id == environment_id)
        .order_by(test_users.c.created_at, test_users.c.user_id)
    )
    return [TestUser(**row._mapping) for row in conn.execute(query)]


def remove_test_user(conn: Connection, environment_id: str, user_id: str) -> bool:
    statement = sa.delete(test_users).where(
        test_users.c.environment_id == environment_id, test_users.c.user_id == user_id
    )
    return bool((conn.execute(statement)).rowcount)


def test_user_ids(conn: Connection, environment_id: str) -> set[str]:
    """Every user ID a test run may reach in this environment."""
    query = sa.select(test_users.c.user_id).where(test_users.c.environment_id == environment_id)
    return set((conn.execute(query)).scalars())


test_user_ids.__test__ = False  # type: ignore[attr-defined]


def reached_and_ignored(user_ids: Iterable[str], testers: set[str]) -> tuple[list[str], list[str]]:
    """Of the users a test run names, the test users it reaches and the others it ignores, each once, in order:
    what `/test`, the editor's test sends and a test sender's rows report."""
    named = list(dict.fromkeys(user_ids))
    return [user for user in named if user in testers], [user for user in named if user not in testers]
