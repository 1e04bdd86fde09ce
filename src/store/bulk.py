"""Bulk INSERT for the hot path: rows as tuples, straight to the driver's executemany.

`conn.execute(insert(table), [dict, …])` costs more CPU per row in
SQLAlchemy (parameter dicts, per-row type processing through its execution
context) than SQLite spends storing the row; on the webhook path that was a
third of the server's CPU. A `BulkInsert` compiles its INSERT once per
dialect with SQLAlchemy (so the SQL and its parameter style stay portable:
qmark for sqlite3, pyformat for psycopg), keeps each column's bind processor
(JSON serializer, UTC datetimes, booleans) and hands the processed rows to
`Connection.exec_driver_sql`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: bool
    processors: tuple[tuple[int, Processor], ...]  # (column index, bind processor) where there is one


class BulkInsert:
    """An INSERT of `columns` into `table`; rows are read off objects by attribute name.

    Every column left out must be allowed to be missing (nullable, or with a
    server-side default, or an autoincrement key): a Python-side default would
    be skipped by the driver, so it is refused here rather than at the first insert.
    """

    def __init__(self, table: sa.Table, columns: Sequence[str]) -> None:
        for column in table.columns:
            if column.name in columns:
                continue
            if column.default is not None or not (
                column.nullable or column.server_default is not None or column is table.autoincrement_column
            ):
                raise ValueError(f"{table.name}.{column.name} needs a value but is not among the bulk columns")
        self._table = table
        self._columns = tuple(columns)
        read = attrgetter(*self._columns)  # one C call per row; a bare value (not a tuple) for one column
        self._values: Callable[[Any], tuple[Any, ...]] = read if len(self._columns) > 1 else lambda obj: (read(obj),)
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = weakref.WeakKeyDictionary()

    def execute(self, conn: Connection, objects: Sequence[Any]) -> None:
        """Insert one row per object (its attributes named like the columns) in one executemany."""
        if not objects:
            return
        compiled = self._compile(conn.dialect)
        rows: list[Any] = []
        for obj in objects:
            row = list(self._values(obj))
            for index, process in compiled.processors:
                row[index] = process(row[index])
            rows.append(tuple(row) if compiled.positional else dict(zip(self._columns, row, strict=True)))
        conn.exec_driver_sql(compiled.sql, rows)

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect)  # per dialect object: it carries the engine's JSON serializer
        if compiled is None:
            statement = sa.insert(self._table).compile(  # for_executemany: no RETURNING of the new keys
                dialect=dialect, column_keys=list(self._columns), for_executemany=True
            )
            positional = bool(statement.positional)
            if positional and list(statement.positiontup or ()) != list(self._columns):
                raise ValueError(f"unexpected parameter order for {self._table.name}: {statement.positiontup}")
            processors = []
            for index, name in enumerate(self._columns):
                column_type = self._table.c[name].type
                process = column_type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors.append((index, process))
            compiled = _Compiled(str(statement), positional, tuple(processors))
            self._compiled[dialect] = compiled
        return compiled
