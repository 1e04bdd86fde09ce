"""A live start runs the flow version whose variables it was checked against, at every door.

Its variables are checked and defaulted for the version published when it is
read, and another may be published before its invocation is stored: a start
checked for version 1 used to run version 2, with version 1's variables (and
without a variable version 2 requires). Webhooks: tests/ingress/test_version_mapped.py.

Each test publishes version 2 in that window, without standing in for any
part of flowhook: over HTTP, the request's body is held back until the
publication is made (the API and SFMC read the flow before the body); the
bulk runner's step is taken in its two halves, a chunk planned on a read
and then stored, with the publication in between. The app runs without its
background loops (as tests/ingress/test_marketo.py), so only the test moves
a task on. Runs on SQLite, and on PostgreSQL too when FLOWHOOK_TEST_POSTGRES
names a server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa

from flows.bulk_runner import plan_chunk
from flows.executor import Executor, ExecutorConfig
from flows.marketo_leads import MarketoLeads
from store.bulk_tasks import Chunk, advance_batches, get_task, task_input
from store.clock import utcnow
from store.tables import customers, invocations

pytestmark = pytest.mark.anyio

VERSION_1 = [{"name": "plan", "type": "string", "default": "basic"}]
VERSION_2 = [
    {"name": "plan", "type": "string", "default": "pro"},
    {"name": "seats", "type": "number", "required": True},  # version 1's variables lack it
]
SECRET = "sfmc-signing-secret-0123456789abcdefXYZW"


@pytest.fixture(scope="module")
def settings_overrides(either_database: dict[str, Any]) -> dict[str, Any]:
    return {**either_database, "executor": False, "marketo_allow_http_callbacks": True}


async def ok(flowhook, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
    response = await flowhook.api.request(method, f"/v1/default{url}", **kwargs)
    assert response.status_code == status, response.text
    return response.json()


async def publish_version_2(flowhook, flow: dict[str, Any]) -> None:
    await ok(flowhook, "PUT", f"/action-flows/{flow['id']}", json={"name": "Welcome", "variables": VERSION_2})
    published = await ok(flowhook, "POST", f"/action-flows/{flow['id']}/publish")
    assert published["publishedVersion"] == 2


async def held_back(body: bytes, read: asyncio.Event, go: asyncio.Event) -> AsyncIterator[bytes]:
    """A request body that arrives once `go` is set, saying when the app first asks for it (`read`)."""
    read.set()
    await go.wait()
    yield body


async def published_meanwhile(
    flowhook, flow: dict[str, Any], send: Callable[[AsyncIterator[bytes]], Awaitable[httpx.Response]], body: bytes
) -> httpx.Response:
    """`send` the request, publishing version 2 after the app has read the flow and before it has the body."""
    read, go = asyncio.Event(), asyncio.Event()
    sent = asyncio.ensure_future(send(held_back(body, read, go)))
    await read.wait()
    await publish_version_2(flowhook, flow)
    go.set()
    return await sent


async def run_as(flowhook, flow: dict[str, Any], key: str) -> tuple[list[int | None], dict[str, Any]]:
    """The flow versions the live invocation `key` and its flow instances ran, and the variables it ran with."""
    await Executor(flowhook.services.store, ExecutorConfig()).drain()
    view = await ok(flowhook, "GET", f"/action-flows/{flow['id']}/invocations/{key}")
    assert view["instances"], view
    query = sa.select(invocations.c.payload).where(
        invocations.c.flow_id == flow["id"], invocations.c.flow_invocation_id == key
    )
    payload = await flowhook.services.store.read(lambda conn: conn.execute(query).scalar_one())
    versions = [view["flowVersion"], *(instance["flowVersion"] for instance in view["instances"])]
    return versions, payload["variables"]


async def test_an_api_start_runs_the_version_its_entries_were_checked_against(flowhook) -> None:
    flow = await flowhook.flow(variables=VERSION_1, publish=True)
    token = (await flowhook.api_client()).token["access_token"]  # sent by hand: authlib's client reads the body
    body = orjson.dumps({"flows": [{"target": {"usersById": ["api-u1"]}, "flowInvocationId": "api-1"}]})

    def send(content: AsyncIterator[bytes]) -> Awaitable[httpx.Response]:
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        url = f"/v1/default/action-flow/{flow['id']}/start"
        return flowhook.sender().post(url, content=content, headers=headers)

    response = await published_meanwhile(flowhook, flow, send, body)
    assert response.status_code == 202, response.text
    assert await run_as(flowhook, flow, "api-1") == ([1, 1], {"plan": "basic"})


def signed(claims: dict[str, Any]) -> bytes:
    """An execute call's body: `claims` as a JWT signed with SECRET (HS256), as tests/ingress/test_sfmc.py makes it."""
    parts = [base64.urlsafe_b64encode(orjson.dumps(part)).rstrip(b"=") for part in ({"alg": "HS256"}, claims)]
    signing_input = b".".join(parts)
    signature = hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest()
    return signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")


async def test_an_sfmc_execute_runs_the_version_its_mapping_applied(flowhook) -> None:
    flow = await flowhook.flow(variables=VERSION_1, publish=True)
    url = f"/action-flows/{flow['id']}/triggers"
    trigger = await ok(flowhook, "POST", url, 201, json={"type": "sfmc", "signingSecret": SECRET, "mode": "live"})

    def send(content: AsyncIterator[bytes]) -> Awaitable[httpx.Response]:
        headers = {"content-type": "application/jwt"}
        return flowhook.sender().post(f"/sfmc/{trigger['hookId']}/execute", content=content, headers=headers)

    body = signed({"inArguments": [{"userId": "sfmc-u1"}], "activityInstanceId": "sfmc-pass-1"})
    response = await published_meanwhile(flowhook, flow, send, body)
    assert response.status_code == 200, response.text
    expected = {"userId": "sfmc-u1", "plan": "basic"}  # the default mapping passes the inArguments on
    assert await run_as(flowhook, flow, "sfmc:sfmc-pass-1") == ([1, 1], expected)


async def published_while_planned(
    flowhook, flow: dict[str, Any], task_id: str, plan: Callable[[Any, dict[str, Any]], Awaitable[Chunk]]
) -> None:
    """The bulk runner's step, with version 2 published between planning the task's chunk and storing it."""
    store = flowhook.services.store
    task = await store.read(lambda conn: get_task(conn, "default", task_id))
    chunk = await plan(task, await store.read(lambda conn: task_input(conn, task_id)))
    await publish_version_2(flowhook, flow)
    advanced = await store.submit(advance_batches, chunk)  # as the runner stores a chunk
    assert advanced.started == 1


async def add_customer(flowhook, user: str, email: str) -> None:
    now = utcnow()
    row = {"environment_id": "default", "user_id": user, "attributes": {"email": email}}
    await flowhook.services.store.write(
        lambda conn: conn.execute(sa.insert(customers), [{**row, "created_at": now, "updated_at": now}])
    )


def planned(flowhook) -> Callable[[Any, dict[str, Any]], Awaitable[Chunk]]:
    """The bulk runner's plan of a CSV or manual task's chunk, on a read."""
    return lambda task, rows: flowhook.services.store.read(lambda conn: plan_chunk(conn, task, rows, 200))


async def test_a_csv_row_runs_the_version_it_was_checked_against(flowhook) -> None:
    flow = await flowhook.flow(variables=VERSION_1, publish=True)
    await add_customer(flowhook, "csv-u1", "csv-u1@example.com")
    client = await flowhook.api_client()
    csv = "target.attributes.email,flowInvocationId\ncsv-u1@example.com,csv-1\n"
    path = f"/v1/default/action-flow/{flow['id']}/csv-task"
    created = await client.post(path, content=csv.encode(), headers={"content-type": "text/csv"})
    assert created.status_code == 202, created.text
    await published_while_planned(flowhook, flow, created.json()["id"], planned(flowhook))
    assert await run_as(flowhook, flow, "csv-1") == ([1, 1], {"plan": "basic"})


async def test_a_manual_start_runs_the_version_it_was_checked_against(flowhook) -> None:
    flow = await flowhook.flow(variables=VERSION_1, publish=True)
    await add_customer(flowhook, "manual-u1", "manual-u1@example.com")
    task = await ok(flowhook, "POST", f"/action-flows/{flow['id']}/manual-starts", 202, json={"userIds": ["manual-u1"]})
    await published_while_planned(flowhook, flow, task["id"], planned(flowhook))
    assert await run_as(flowhook, flow, f"{task['id']}:1") == ([1, 1], {"plan": "basic"})


async def test_a_marketo_lead_runs_the_version_its_mapping_applied(flowhook) -> None:
    flow = await flowhook.flow(variables=VERSION_1, publish=True)
    url = f"/action-flows/{flow['id']}/triggers"
    trigger = await ok(flowhook, "POST", url, 201, json={"type": "marketo", "mode": "live"})
    lead = {"objectContext": {"id": 7, "externalId": "mkto-u1"}, "flowStepContext": {"userIdField": "externalId"}}
    submission = {
        "token": "version-token",
        "apiCallBackKey": "callback-key",
        "callbackUrl": "http://127.0.0.1:18200/callback",  # never called: the test sends no callbacks
        "objectData": [lead],
    }
    service, key = trigger["serviceUrl"].removeprefix("http://flowhook.test"), trigger["apiKey"]
    submitted = await flowhook.sender().post(f"{service}submitAsyncAction", json=submission, headers={"x-api-key": key})
    assert submitted.status_code == 201, submitted.text
    leads = MarketoLeads(flowhook.services.store, flowhook.services.runner)

    def plan(task: Any, rows: dict[str, Any]) -> Awaitable[Chunk]:
        return leads.plan_chunk(task, rows, 200)

    await published_while_planned(flowhook, flow, submitted.json()["taskId"], plan)
    query = sa.select(invocations.c.flow_invocation_id).where(invocations.c.flow_id == flow["id"])
    [started] = await flowhook.services.store.read(lambda conn: conn.execute(query).scalars().all())
    assert await run_as(flowhook, flow, started) == ([1, 1], {"plan": "basic"})
