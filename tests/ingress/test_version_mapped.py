"""A live webhook runs the flow version whose variables its mapping applied.

A hook's configuration (its mapping, with the published version's variables)
is cached for `config_cache_seconds`, and a publish made by another process
does not reach this one's cache at once. A webhook mapped with version 1's
variables used to be accepted under version 2 whenever 2 had been published
meanwhile: its variables were checked and defaulted for one version and run
by another (a variable version 2 requires could be missing from its run).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from store import flows
from store.tables import invocations

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"config_cache_seconds": 3600.0}  # a publish made elsewhere stays unseen for the whole test


async def test_a_webhook_mapped_for_one_version_runs_that_version(flowhook) -> None:
    flow = await flowhook.flow(variables=[{"name": "plan", "type": "string", "default": "basic"}], publish=True)
    trigger = await flowhook.trigger(flow, mode="live", mapping={"kind": "passthrough"})
    first = await flowhook.post(trigger, orjson.dumps({"targetUserIds": ["u1"]}))  # caches version 1's config
    assert first.status_code == 202, first.text
    draft = {"name": "f", "variables": [{"name": "plan", "type": "string", "default": "pro"}], "steps": []}
    store = flowhook.services.store
    await store.write(lambda conn: flows.update_draft(conn, "default", flow["id"], draft))  # as another process
    await store.write(lambda conn: flows.publish(conn, "default", flow["id"]))
    second = await flowhook.post(trigger, orjson.dumps({"targetUserIds": ["u2"]}))
    assert second.status_code == 202, second.text
    query = sa.select(invocations.c.flow_version, invocations.c.payload).order_by(invocations.c.seq)
    rows = await store.read(lambda conn: conn.execute(query.where(invocations.c.flow_id == flow["id"])).all())
    assert [(version, payload["variables"]["plan"]) for version, payload in rows] == [(1, "basic"), (1, "basic")]
