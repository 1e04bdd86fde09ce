"""Idempotent effects: ids derived from what they identify, inserts that ignore repeats.

The executor may run the same step again after a crash or on another worker
that raced it; the card or analytics event it produces then carries the same
id, and the unique index makes the second insert a no-op instead of a copy.

`insert_new` is on the executor's hot path (five rows per card sent), so it
compiles its statement once per table and runs the column types' own bind
processors itself, then hands the driver one executemany: SQLAlchemy's
per-row parameter handling costs more than SQLite's insert. Equal timestamps
(a batch stamps everything with one `now`) are converted once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

from store.ids import time_part


def derived_id(prefix: str, parent: str, *parts: str) -> str:
    """`crd_…`: the same parent and parts always give the same id (96 bits of SHA-256).

    The id leads with its parent's time part (store.ids), so the effects of
    work accepted together land together in every index keyed by id, as new
    ids do: a purely hashed id dirtied a random leaf page of each such index
    per effect, which made the executor's commits the longest writes a
    webhook waited for, and grew with the tables.
    """
    digest = hashlib.sha256("\x1f".join((parent, *parts)).encode()).hexdigest()
    return f"{prefix}_{time_part(parent)}{digest[:24]}"


def insert_or_skip(dialect: Dialect, table: sa.Table) -> sa.Insert:
    """`INSERT … ON CONFLICT DO NOTHING`: a row whose unique key is already stored is skipped, not an error."""
    insert = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


@dataclass(frozen=True)
class _Plan:
    sql: str
    keys: tuple[str, ...]  # parameter order
    positional: bool
    processors: tuple[Callable[[Any], Any] | None, ...]


@functools.cache
def _plan(dialect: Dialect, table: sa.Table, keys: tuple[str, ...]) -> _Plan:
    compiled = insert_or_skip(dialect, table).compile(dialect=dialect, column_keys=list(keys))
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else keys
    # The dialect's own type (SQLite's DATETIME, not the generic one): it renders timestamps as the
    # rest of the store stores and compares them, and spares the driver's per-row adapter.
    processors = tuple(table.c[key].type.dialect_impl(dialect).bind_processor(dialect) for key in order)
    return _Plan(compiled.string, order, bool(compiled.positional), processors)


def insert_new(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (all with the same keys), skipping any whose unique key is already stored."""
    if not rows:
        return
    plan = _plan(conn.dialect, table, tuple(rows[0]))
    columns = [
        _bind_column(process, [row[key] for row in rows])
        for key, process in zip(plan.keys, plan.processors, strict=True)
    ]
    if plan.positional:
        params: list[Any] = list(zip(*columns, strict=True))
    else:
        params = [dict(zip(plan.keys, values, strict=True)) for values in zip(*columns, strict=True)]
    conn.exec_driver_sql(plan.sql, params)


def _bind_column(process: Callable[[Any], Any] | None, values: list[Any]) -> list[Any]:
    """One column's values as the driver takes them; each distinct timestamp converted once."""
    if process is None:
        return values
    converted: dict[Any, Any] = {None: None}
    bound = []
    for value in values:
        if isinstance(value, datetime) or value is None:
            if value not in converted:
                converted[value] = process(value)
            bound.append(converted[value])
        else:
            bound.append(process(value))
    return bound
