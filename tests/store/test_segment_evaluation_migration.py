"""Migration 11: the segments of a version-10 database count as evaluated, and their evaluations resume from then on.

Runs on a new database each (SQLite, and PostgreSQL when FLOWHOOK_TEST_POSTGRES is set).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from store import Store, segments
from store.engine import create_engines
from store.migrations import MIGRATIONS
from store.tables import schema_migrations

pytestmark = pytest.mark.anyio

RULES = {"all": [{"attribute": "plan", "op": "eq", "value": "pro"}]}
ADDED = (
    "evaluated_revision",
    "evaluation_after",
    "evaluation_lease",
    "evaluation_examined",
    "evaluation_entered",
    "evaluation_exited",
)


def as_version_10_left_it(database: URL) -> None:
    engines = create_engines(database)
    try:
        with engines.write.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_segments_evaluation_lease"))
            for column in ADDED:
                conn.execute(sa.text(f"ALTER TABLE segments DROP COLUMN {column}"))
            conn.execute(sa.delete(schema_migrations).where(schema_migrations.c.version > 10))
    finally:
        engines.dispose()


async def test_a_version_10_database_counts_its_segments_as_evaluated(database: URL) -> None:
    store = await Store.open(database, fsync=False)
    try:
        made = await store.write(lambda conn: segments.insert_segment(conn, "default", "Pro", RULES))
        await store.write(lambda conn: segments.update_segment(conn, "default", made.id, "Pro", RULES))
    finally:
        await store.close()
    as_version_10_left_it(database)
    store = await Store.open(database, fsync=False)
    try:
        found = await store.read(lambda conn: segments.get_segment(conn, "default", made.id))
        assert found is not None and found.revision == 2
        assert found.evaluation == segments.Evaluation(2, True, None, None, None, None)  # done, nothing counted
        assert await store.read(lambda conn: segments.stale_evaluation(conn, found.updated_at)) is None
        edited = await store.write(lambda conn: segments.update_segment(conn, "default", made.id, "Pro", RULES))
        assert edited is not None
        assert edited.evaluation == segments.Evaluation(3, False, None, 0, 0, 0)  # a new revision starts afresh
        versions = await store.read(lambda conn: conn.execute(sa.select(schema_migrations.c.version)).scalars().all())
        assert sorted(versions) == [migration.version for migration in MIGRATIONS]
    finally:
        await store.close()
