"""BulkInsert: rows straight to the driver read back exactly as SQLAlchemy's own INSERT would store them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from store.bulk import BulkInsert
from store.engine import create_engines
from store.tables import Json, Sequence, UtcDateTime

metadata = sa.MetaData()
things = sa.Table(
    "things",
    metadata,
    sa.Column("seq", Sequence, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Text, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("doc", Json, nullable=True),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
)


@dataclass
class Thing:
    id: str
    at: datetime
    doc: dict[str, Any] | None
    flag: bool


def stored(engine: sa.Engine, rows: list[Thing], *, bulk: bool) -> list[tuple[Any, ...]]:
    with engine.begin() as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)
        if bulk:
            BulkInsert(things, ["id", "at", "doc", "flag"]).execute(conn, rows)
        else:
            conn.execute(sa.insert(things), [row.__dict__ for row in rows])
        return [tuple(row) for row in conn.execute(sa.select(things).order_by(things.c.seq))]


def test_rows_read_back_as_with_sqlalchemys_insert(tmp_path: Any) -> None:
    engines = create_engines(sa.make_url(f"sqlite:///{tmp_path / 'bulk.db'}"))
    elsewhere = timezone(timedelta(hours=13))
    rows = [
        Thing("a", datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC), {"x": [1, "é", None]}, True),
        Thing("b", datetime(2024, 3, 2, 1, 0, tzinfo=elsewhere), None, False),
    ]
    try:
        assert stored(engines.write, rows, bulk=True) == stored(engines.write, rows, bulk=False)
        assert stored(engines.write, [], bulk=True) == []
    finally:
        engines.dispose()


def test_the_statement_follows_the_dialects_parameter_style() -> None:
    insert = BulkInsert(things, ["id", "at", "doc", "flag"])
    compiled = insert._compile(postgresql.psycopg2.dialect())  # no driver needed to compile
    assert not compiled.positional
    assert compiled.sql == "INSERT INTO things (id, at, doc, flag) VALUES (%(id)s, %(at)s, %(doc)s::JSON, %(flag)s)"


def test_a_required_column_left_out_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="things.flag"):
        BulkInsert(things, ["id", "at"])
