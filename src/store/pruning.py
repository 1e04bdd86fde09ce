"""Bounded per-trigger logs: keep the newest N rows of each trigger, delete the rest a chunk at a time.

The request log and the event deliveries are both kept this way; a table
pruned here needs a sequence column `seq` and an index on (trigger_id, seq).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_EVERY_ROW = sa.true()


def prune_newest(
    conn: Connection,
    table: sa.Table,
    trigger_ids: Iterable[str | None],
    keep: int,
    limit: int | None = None,
    *,
    prunable: sa.ColumnElement[bool] = _EVERY_ROW,
) -> int:
    """Delete all but the newest `keep` prunable rows of each trigger, oldest first and at most `limit` rows
    in all (None: no limit); returns rows deleted. Fewer than `limit` deleted means nothing is left over.

    The last `seq` to delete is looked up first, so the DELETE is one range of
    the (trigger, seq) index: with the chunk's bound inside the DELETE as an
    `OR`, SQLite walked the trigger's whole backlog for every chunk.
    """
    seq = table.c.seq
    deleted = 0
    for trigger_id in trigger_ids:
        if limit is not None and deleted >= limit:
            break
        same_trigger = table.c.trigger_id.is_(None) if trigger_id is None else table.c.trigger_id == trigger_id
        rows = sa.select(seq).where(same_trigger, prunable).limit(1)
        last = conn.execute(rows.order_by(seq.desc()).offset(keep)).scalar()
        if last is None:
            continue
        if limit is not None:  # no further than the (limit - deleted)-th oldest, when there is one
            chunk_end = conn.execute(rows.order_by(seq).offset(limit - deleted - 1)).scalar()
            last = last if chunk_end is None else min(last, chunk_end)
        deleted += conn.execute(sa.delete(table).where(same_trigger, prunable, seq <= last)).rowcount
    return deleted
