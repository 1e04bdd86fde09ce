"""The locks that order the writers of segment memberships against what must see all of them (PostgreSQL).

A membership changes in the transaction of a writer that holds its
environment's rules (a profile written, events stored: store.segments.hold_rules,
shared) or the segment's row (a chunk of its evaluation, FOR UPDATE), and it
takes its time (`entered_at`) once it holds them. So taking the rules
exclusively and the segment's row waits for every writer in flight on the
segment, and every writer after that takes a later time: `hold_entries`
keeps them waiting until this transaction ends (a segment trigger made now
is seen by every entry timed after it), `await_entries` lets them go at once
(an entry timed before now is committed, and one timed after is not waited
for). SQLite has one writer at a time: no writer is ever in flight.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.tables import segments

# PostgreSQL advisory lock namespace of the rules (migrations hold lock 7233616, invocation pruning 7233617).
_RULES_LOCK = 7233618


def rules_lock(conn: Connection, environment_id: str, *, exclusive: bool) -> None:
    """The environment's rules until this transaction ends: shared by writers that evaluate customers against
    them, exclusive for a change of segments (it waits for the writers holding them and keeps new ones out)."""
    if conn.dialect.name == "postgresql":
        lock = sa.func.pg_advisory_xact_lock if exclusive else sa.func.pg_advisory_xact_lock_shared
        key = zlib.crc32(environment_id.encode()) - 2**31  # an int4; environments sharing one just wait more
        conn.execute(sa.select(lock(sa.literal(_RULES_LOCK, sa.Integer), sa.literal(key, sa.Integer))))


def hold_entries(conn: Connection, environment_id: str, segment_id: str) -> None:
    """Wait for every writer in flight that may change the segment's members, and keep new ones waiting until
    this transaction ends (the lock order: rules, then the segment's row)."""
    if conn.dialect.name == "postgresql":
        rules_lock(conn, environment_id, exclusive=True)
        conn.execute(sa.select(segments.c.id).where(segments.c.id == segment_id).with_for_update(read=True))


def await_entries(conn: Connection, environment_id: str, segment_id: str) -> None:
    """Wait for every writer in flight that may change the segment's members, keeping none waiting after: the
    locks are taken in a savepoint rolled back at once, which releases them."""
    if conn.dialect.name == "postgresql":
        with conn.begin_nested() as savepoint:
            hold_entries(conn, environment_id, segment_id)
            savepoint.rollback()
