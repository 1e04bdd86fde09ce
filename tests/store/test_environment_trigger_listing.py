"""The environment's trigger listing merges two tables (stored triggers, flows as API triggers): its pages
must neither repeat nor skip a trigger when many share one creation time, whatever the page size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from store import Store
from store.tables import flows, schema_migrations, triggers
from store.triggers import ApiTrigger, Position, Trigger, insert_trigger, list_environment_triggers

pytestmark = pytest.mark.anyio

ENV = "default"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SECOND = timedelta(seconds=1)
# (flows, stored triggers) made at each time: three of each at the same instant.
MADE = {NOW - SECOND: (1, 2), NOW: (3, 3), NOW + SECOND: (0, 1)}


def make(conn: Connection) -> None:
    flow_ids = []
    for at, (flow_count, _) in MADE.items():
        for index in range(flow_count):
            flow_id = f"flw_{at:%H%M%S}_{index}"
            conn.execute(
                sa.insert(flows).values(
                    id=flow_id, environment_id=ENV, draft={}, draft_revision=1, created_at=at, updated_at=at
                )
            )
            flow_ids.append(flow_id)
    for at, (_, trigger_count) in MADE.items():
        for index in range(trigger_count):
            made = insert_trigger(conn, ENV, flow_ids[index % len(flow_ids)], kind="webhook", mode="test", mapping={})
            conn.execute(sa.update(triggers).where(triggers.c.id == made.id).values(created_at=at))


def walk(conn: Connection, limit: int) -> list[Trigger | ApiTrigger]:
    found: list[Trigger | ApiTrigger] = []
    after: Position | None = None
    while True:
        page = list_environment_triggers(conn, ENV, limit=limit, after=after)
        assert page is not None
        items, after = page
        assert len(items) <= limit
        found += items
        if after is None:
            return found


async def test_pages_of_any_size_list_every_trigger_once_newest_first_when_times_tie(store: Store) -> None:
    await store.write(make)
    everything = await store.read(lambda conn: walk(conn, 100))
    assert len(everything) == sum(flow_count + trigger_count for flow_count, trigger_count in MADE.values())
    assert len({trigger.id for trigger in everything}) == len(everything)
    # Newest first; of one time, the stored triggers before the API triggers.
    order = [(trigger.created_at, isinstance(trigger, Trigger)) for trigger in everything]
    assert order == sorted(order, reverse=True)
    expected = [trigger.id for trigger in everything]
    for size in range(1, len(everything) + 1):
        paged = await store.read(lambda conn, size=size: walk(conn, size))
        assert [trigger.id for trigger in paged] == expected, size


async def test_a_version_11_database_gets_the_listing_indexes(database: URL) -> None:
    await (await Store.open(database, fsync=False)).close()
    engine = sa.create_engine(database)
    try:
        with engine.begin() as conn:  # as version 11 left it
            conn.execute(sa.text("DROP INDEX ix_triggers_environment_created"))
            conn.execute(sa.text("DROP INDEX ix_flows_environment_created"))
            conn.execute(sa.delete(schema_migrations).where(schema_migrations.c.version == 12))
        await (await Store.open(database, fsync=False)).close()
        with engine.connect() as conn:
            indexes = {table: {index["name"]: index["column_names"] for index in sa.inspect(conn).get_indexes(table)}
                       for table in ("triggers", "flows")}  # fmt: skip
            versions = set(conn.execute(sa.select(schema_migrations.c.version)).scalars())
    finally:
        engine.dispose()
    assert indexes["triggers"]["ix_triggers_environment_created"] == ["environment_id", "created_at", "id"]
    assert indexes["flows"]["ix_flows_environment_created"] == ["environment_id", "created_at", "id"]
    assert 12 in versions
