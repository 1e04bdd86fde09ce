"""A card template is in use while any run still to start or under way will send it, whatever version of its
flow that run was accepted under (ingress.api.card_templates).

The app runs without its executor, so an accepted invocation stays pending
until a test runs it. On SQLite, and on PostgreSQL too when
FLOWHOOK_TEST_POSTGRES names a server.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from flows.executor import Executor

pytestmark = pytest.mark.anyio
_users = itertools.count()


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False}  # invocations stay pending until a test runs them


@pytest.fixture
def user() -> str:
    return f"in-use-{next(_users)}"


async def ok(flowhook, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await flowhook.api.request(method, f"/v1/default{url}", **kwargs)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def start(flowhook, flow: dict[str, Any], user: str) -> None:
    """Start the published flow for `user` through its API trigger: accepted, not run yet."""
    client = await flowhook.api_client()
    body = {"flows": [{"target": {"usersById": [user]}}]}
    response = await client.post(f"/v1/default/action-flow/{flow['id']}/start", json=body)
    assert response.status_code in (200, 202), response.text


async def replace_steps(flowhook, flow: dict[str, Any], steps: list[dict[str, Any]]) -> None:
    """Publish a new version of the flow with these steps."""
    await ok(flowhook, "PUT", f"/action-flows/{flow['id']}", json={"name": flow["name"], "steps": steps})
    await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish")


async def titles(flowhook, user: str) -> list[str]:
    return [card["definition"]["title"] for card in (await ok(flowhook, "GET", f"/users/{user}/cards"))["data"]]


async def test_a_template_only_an_older_version_sends_is_in_use_while_runs_accepted_under_it_wait(
    flowhook, user
) -> None:
    """Runs start with the version they were accepted under: deleting its template before they start would
    fail them at the card. Once they have started (and finished), nothing keeps it."""
    flow = await flowhook.card_flow("Version one")
    template_url = f"/card-templates/{flow['steps'][0]['cardTemplateId']}"
    await start(flowhook, flow, user)
    await replace_steps(flowhook, flow, [])  # version 2 sends nothing; the pending run is version 1's
    refused = await flowhook.api.delete(f"/v1/default{template_url}")
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "card_template_in_use"
    assert flow["id"] in error["message"]
    await Executor(flowhook.services.store).drain()
    assert await titles(flowhook, user) == ["Version one"]
    await ok(flowhook, "DELETE", template_url, 204)
    assert await titles(flowhook, user) == ["Version one"]  # a sent card keeps its copy


async def test_an_older_version_with_no_run_to_start_keeps_no_template(flowhook, user) -> None:
    """Only pending runs keep an older version's templates: otherwise every template a flow ever sent would be
    in use forever."""
    flow = await flowhook.card_flow("Retired")
    template_url = f"/card-templates/{flow['steps'][0]['cardTemplateId']}"
    await start(flowhook, flow, user)
    await Executor(flowhook.services.store).drain()
    await replace_steps(flowhook, flow, [])
    await ok(flowhook, "DELETE", template_url, 204)
    assert await titles(flowhook, user) == ["Retired"]
