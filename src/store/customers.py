"""Customer profiles: the attributes segments filter on and bulk starts match.

Writing or deleting a profile decides the customer's segment memberships in
the same transaction (store.segments), so a profile and the entries and
exits it causes, with their events, commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store import segments
from store.clock import utcnow
from store.idempotent import insert_or_skip
from store.tables import customers


@dataclass(frozen=True)
class Customer:
    seq: int
    environment_id: str
    user_id: str
    attributes: dict[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Written:
    customer: Customer
    created: bool
    changes: segments.Changes


def put_customer(conn: Connection, environment_id: str, user_id: str, attributes: dict[str, Any]) -> Written:
    """Create the profile or replace its attributes, then evaluate it against every segment.

    Insert-or-skip, then update: the row is locked either way before the
    segments are evaluated, and two writers of a new profile on PostgreSQL
    do not collide (the second one's insert waits, skips, and updates). The
    segments' rules are held before that (store.segments.hold_rules), so an
    edit in flight has committed, or waits for this write.
    """
    segments.hold_rules(conn, environment_id)
    now = utcnow()
    values = {"environment_id": environment_id, "user_id": user_id, "attributes": attributes}
    insert = insert_or_skip(conn.dialect, customers).values(**values, created_at=now, updated_at=now)
    row = conn.execute(insert.returning(customers)).first()
    created = row is not None
    if row is None:
        update = (
            sa.update(customers)
            .where(customers.c.environment_id == environment_id, customers.c.user_id == user_id)
            .values(attributes=attributes, updated_at=now)
            .returning(customers)
        )
        row = conn.execute(update).one()
    changes = segments.evaluate_customer(conn, environment_id, user_id, attributes)
    return Written(Customer(**row._mapping), created, changes)


def get_customer(conn: Connection, environment_id: str, user_id: str) -> Customer | None:
    query = sa.select(customers).where(customers.c.environment_id == environment_id, customers.c.user_id == user_id)
    row = conn.execute(query).first()
    return Customer(**row._mapping) if row else None


def delete_customer(conn: Connection, environment_id: str, user_id: str) -> segments.Changes | None:
    """Remove the profile; it exits every segment it was in (with the events). None if there was none.

    The segments' rules are held first, as a profile write holds them: a segment trigger made meanwhile
    (store.segment_locks) is then committed before the exits take their time, so they fire it.
    """
    segments.hold_rules(conn, environment_id)
    statement = sa.delete(customers).where(customers.c.environment_id == environment_id, customers.c.user_id == user_id)
    if conn.execute(statement).rowcount == 0:
        return None
    return segments.customer_removed(conn, environment_id, user_id)


def list_customers(
    conn: Connection, environment_id: str, *, limit: int, after: int | None
) -> tuple[list[Customer], int | None]:
    """A page of profiles in the order they were created, and the next page's cursor."""
    query = sa.select(customers).where(customers.c.environment_id == environment_id)
    if after is not None:
        query = query.where(customers.c.seq > after)
    found = [Customer(**row._mapping) for row in conn.execute(query.order_by(customers.c.seq).limit(limit + 1))]
    if len(found) > limit:
        return found[:limit], found[limit - 1].seq
    return found, None
