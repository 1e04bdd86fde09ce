"""A process whose database file was replaced under it is not ready, for good, from that moment on.

Not only for a while after a write failed (tests/ingress/test_replaced_database.py): the files it writes are
not coming back, so no balancer should send it traffic until it restarts. Its own module, for an app of its
own with no executor, whose writes would make the check pass for another reason.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    return {"executor": False}


async def test_the_process_is_not_ready_once_the_database_file_is_replaced_even_before_a_write(flowhook) -> None:
    assert (await flowhook.sender().get("/readyz")).status_code == 200
    database = flowhook.data_dir / "flowhook.db"
    shutil.copyfile(database, database.with_name("restored.db"))
    os.replace(database.with_name("restored.db"), database)
    ready = await flowhook.sender().get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["writer"] == "failing"
