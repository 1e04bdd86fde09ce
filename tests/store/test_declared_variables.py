"""`store.flows.declared_variables`: a flow's draft and published variable declarations, read in one query.

Each test runs on a new database (SQLite, and PostgreSQL when FLOWHOOK_TEST_POSTGRES is set).
"""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Connection

from store import Store, flows
from store.flows import DeclaredVariables

pytestmark = pytest.mark.anyio

NAME = {"name": "name", "type": "string"}
COUNT = {"name": "count", "type": "number", "default": 1}


async def test_a_flow_never_published_has_draft_declarations_only(store: Store) -> None:
    def write(conn: Connection) -> str:
        return flows.insert_flow(conn, "default", {"variables": [NAME], "steps": []}).id

    flow_id = await store.write(write)
    declared = await store.read(lambda conn: flows.declared_variables(conn, "default", flow_id))
    assert declared == DeclaredVariables(draft=[NAME], published=None, published_version=None)
    assert declared.for_run(live=True) == [NAME]  # a live trigger maps with the draft until the first publish


async def test_the_published_version_and_the_draft_are_read_apart(store: Store) -> None:
    def write(conn: Connection) -> str:
        flow = flows.insert_flow(conn, "default", {"variables": [NAME], "steps": []})
        flows.publish(conn, "default", flow.id)
        flows.update_draft(conn, "default", flow.id, {"variables": [NAME, COUNT], "steps": []})
        flows.publish(conn, "default", flow.id)
        flows.update_draft(conn, "default", flow.id, {"steps": []})
        return flow.id

    flow_id = await store.write(write)
    declared = await store.read(lambda conn: flows.declared_variables(conn, "default", flow_id))
    # the latest version, not the first
    assert declared == DeclaredVariables(draft=[], published=[NAME, COUNT], published_version=2)
    assert declared.for_run(live=True) == [NAME, COUNT]
    assert declared.for_run(live=False) == []


async def test_a_flow_of_another_environment_or_none_is_not_found(store: Store) -> None:
    def write(conn: Connection) -> str:
        return flows.insert_flow(conn, "default", {"variables": [NAME], "steps": []}).id

    flow_id = await store.write(write)
    assert await store.read(lambda conn: flows.declared_variables(conn, "other", flow_id)) is None
    assert await store.read(lambda conn: flows.declared_variables(conn, "default", "flw_missing")) is None
