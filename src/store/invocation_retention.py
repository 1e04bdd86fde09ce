"""Retention of finished work: invocations and their flow instances, once nothing runs them any more.

An invocation goes with its flow instances, whole: when the executor has
expanded it (`done`) or given up on it (`failed`), it was accepted before the
cutoff, and every one of its instances is finished (`completed`, `failed`,
`ignored`) and last changed before the cutoff. Those states are final (the
executor advances only `active` and `waiting` instances, and a card action
changes only a waiting one), so what was found prunable stays prunable. A
pending invocation, or one with an instance waiting on a timer or a card, is
kept however old. Cards and analytics events are the user's data and stay,
with the ids of what was pruned; the one reader that follows such an id, a
card action, then has no wait to release (store.cards.act_on_card).

The walk goes in id order: ids lead with their creation time (store.ids),
and a flow instance's unique index leads with its invocation's id, so a
chunk reads one range of each index, its next one starts where it stopped,
and no chunk walks the backlog behind it or the recent rows beyond the cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.expansions import DONE, FAILED
from store.tables import flow_instances, invocations

FINISHED_INVOCATIONS = (DONE, FAILED)
UNFINISHED_INSTANCES = ("active", "waiting")
_PRUNING_LOCK = 7233617  # PostgreSQL advisory lock: one process prunes at a time (migrations hold 7233616)
_HEAD = (invocations.c.id, invocations.c.status, invocations.c.created_at)


@dataclass(frozen=True)
class Chunk:
    """What one chunk did: rows deleted (invocations and instances), and where the next one starts
    (None: the walk reached the cutoff, or another process is pruning)."""

    deleted: int
    next_after: str | None


def prune_finished(conn: Connection, cutoff: datetime, after: str, limit: int) -> Chunk:
    """Delete the prunable invocations among the next ones after id `after` accepted before `cutoff`,
    with their instances: at most `limit` invocations and `limit` instances read, and those deleted.

    An invocation with more than `limit` instances (up to 10,000 users) is
    deleted over several chunks, its instances a slice at a time and the
    invocation itself with the last slice; the chunk that finds it checks
    all of its instances, so such a chunk reads up to that many rows.
    """
    if _another_process_prunes(conn):
        return Chunk(0, None)
    heads = conn.execute(
        sa.select(*_HEAD)
        .where(invocations.c.id > after, invocations.c.id < _first_id_after(cutoff))
        .order_by(invocations.c.id)
        .limit(limit)
    ).all()
    if not heads:
        return Chunk(0, None)
    columns = (flow_instances.c.invocation_id, flow_instances.c.user_id, flow_instances.c.status)
    instances = conn.execute(
        sa.select(*columns, flow_instances.c.updated_at)
        .where(flow_instances.c.invocation_id > after, flow_instances.c.invocation_id <= heads[-1].id)
        .order_by(flow_instances.c.invocation_id, flow_instances.c.user_id)
        .limit(limit + 1)
    ).all()
    if len(instances) > limit:  # only the invocations before the one cut off were read whole
        cut = instances[limit].invocation_id
        heads = [head for head in heads if head.id < cut]
        if not heads:
            return _prune_slice(conn, cutoff, after, cut, instances[limit - 1].user_id)
    blocked = {row.invocation_id for row in instances if _keeps(row.status, row.updated_at, cutoff)}
    prunable = [
        head.id for head in heads if head.id not in blocked and _finished_before(head.status, head.created_at, cutoff)
    ]
    deleted = 0
    if prunable:  # within the chunk's range too: one range of each index, whatever the planner makes of the list
        for table, column in ((flow_instances, flow_instances.c.invocation_id), (invocations, invocations.c.id)):
            within = sa.and_(column > after, column <= heads[-1].id, column.in_(prunable))
            deleted += conn.execute(sa.delete(table).where(within)).rowcount
    return Chunk(deleted, heads[-1].id)


def _prune_slice(conn: Connection, cutoff: datetime, after: str, invocation_id: str, last_user_id: str) -> Chunk:
    """The first instances of an invocation too large for one chunk, up to `last_user_id`, if it is prunable;
    the next chunk comes back to it."""
    head = conn.execute(sa.select(*_HEAD).where(invocations.c.id == invocation_id)).one()
    same = flow_instances.c.invocation_id == invocation_id
    keeping = sa.or_(flow_instances.c.status.in_(UNFINISHED_INSTANCES), flow_instances.c.updated_at >= cutoff)
    if (
        not _finished_before(head.status, head.created_at, cutoff)
        or conn.execute(sa.select(1).where(same, keeping).limit(1)).first()
    ):
        return Chunk(0, invocation_id)
    deleted = conn.execute(sa.delete(flow_instances).where(same, flow_instances.c.user_id <= last_user_id)).rowcount
    return Chunk(deleted, after)


def _finished_before(status: str, created_at: datetime, cutoff: datetime) -> bool:
    """Whether the executor is done with an invocation accepted before the cutoff (its instances aside)."""
    return status in FINISHED_INVOCATIONS and created_at < cutoff


def _keeps(status: str, updated_at: datetime, cutoff: datetime) -> bool:
    """Whether this instance keeps its invocation: it may still run, or finished after the cutoff
    (`keeping` in `_prune_slice` says the same in SQL)."""
    return status in UNFINISHED_INSTANCES or updated_at >= cutoff


def _first_id_after(cutoff: datetime) -> str:
    """Above every invocation id made up to the cutoff's millisecond: `inv_` and the next millisecond, as
    `store.ids.new_id` writes it. Only the end of the index range; the rows' own `created_at` decides."""
    return f"inv_{int(cutoff.timestamp() * 1000) + 1:012x}"


def _another_process_prunes(conn: Connection) -> bool:
    """On PostgreSQL, whether another `serve` or `worker` holds the pruning lock (this chunk then does nothing);
    the lock ends with the transaction. SQLite's single writer already runs one chunk at a time."""
    if conn.dialect.name != "postgresql":
        return False
    return not conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(_PRUNING_LOCK))).scalar()
