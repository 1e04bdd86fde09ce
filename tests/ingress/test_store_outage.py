"""While the store cannot be reached: 503 `store_unavailable` everywhere, `/metrics` still answers, a quiet log.

A real app under uvicorn, over HTTP, with its store taken away for real and
then given back: on SQLite its directory is renamed away (an open SQLite
connection keeps its file whatever becomes of the path, so the pools are
emptied: what fails is opening the file again, as a new connection or a
restart does; SQLITE_CANTOPEN), on PostgreSQL (FLOWHOOK_TEST_POSTGRES) the
database stops taking connections and its sessions are terminated. Every
route that reads or writes the store must answer 503 with `Retry-After`
(a retry will do) rather than 500 (a bug), `/metrics` must keep the
process's counters with `flowhook_store_up 0`, and the log must get a few
lines, not a traceback per request and per poll.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import URL

from flows.background import BackgroundLoop
from ingress.app import create_app
from ingress.errors import UnavailableLog
from ingress.serve import uvicorn_options
from ingress.services import Services
from ingress.settings import Settings
from store import Store, database_url

pytestmark = pytest.mark.anyio

TOKEN = "fh_admin_store-outage-test-token"
ADMIN = {"authorization": f"Bearer {TOKEN}"}
OUTAGE_SECONDS = 2.0  # the executor and the dispatcher poll every 0.1 s: forty tracebacks, before back-off
LOOPS = ("executor", "event-dispatcher", "bulk-runner", "segment-evaluator")


@dataclass
class Served:
    url: str
    services: Services
    store_down: Callable[[], AbstractAsyncContextManager[None]]


@asynccontextmanager
async def sqlite_directory_gone(directory: Path, store: Store) -> AsyncIterator[None]:
    away = directory.with_name(directory.name + "-away")
    directory.rename(away)
    store.engines.read.dispose()
    store.engines.write.dispose()
    try:
        yield
    finally:
        away.rename(directory)


@asynccontextmanager
async def postgres_refusing(url: URL) -> AsyncIterator[None]:
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def run(*statements: str) -> None:
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), {"name": url.database})

    terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
    await asyncio.to_thread(run, f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false', terminate)
    try:
        yield
    finally:
        await asyncio.to_thread(run, f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true')
        admin.dispose()


@pytest.fixture(scope="module")
async def served(
    either_database: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, uvicorn_on_loopback: Any
) -> AsyncIterator[Served]:
    data_dir = tmp_path_factory.mktemp("store-outage")
    overrides = either_database or {"database": f"sqlite:///{data_dir / 'store' / 'flowhook.db'}"}
    settings = Settings(data_dir=data_dir, admin_token=TOKEN, sandbox_workers=1, **overrides)
    app = create_app(settings)
    async with uvicorn_on_loopback(app, uvicorn_options(settings)) as port:
        services: Services = app.state.services
        url = database_url(settings.database, data_dir)

        def store_down() -> AbstractAsyncContextManager[None]:
            if url.get_backend_name() == "sqlite":
                assert url.database is not None
                return sqlite_directory_gone(Path(url.database).parent, services.store)
            return postgres_refusing(url)

        yield Served(f"http://127.0.0.1:{port}", services, store_down)


@pytest.fixture
async def api(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=served.url, headers=ADMIN, timeout=30) as client:
        yield client


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def starting(self, text: str | tuple[str, ...]) -> list[logging.LogRecord]:
        return [record for record in self.records if record.getMessage().startswith(text)]


@contextmanager
def recorded(*names: str) -> Iterator[Recorder]:
    """Every record of these loggers (uvicorn's do not reach the root logger, nor pytest's capture)."""
    recorder = Recorder()
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        for logger in loggers:
            logger.removeHandler(recorder)


def metrics(text: str) -> dict[str, float]:
    """Every unlabelled sample of the exposition, and the webhook 503s."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                found[sample.name] = sample.value
            elif sample.labels.get("cause") == "store_unavailable":
                found["webhook_503s"] = sample.value
    return found


async def created(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    found: dict[str, Any] = response.json()
    return found


async def until_answered(api: httpx.AsyncClient, method: str, path: str, **options: Any) -> httpx.Response:
    """What a client that honours `Retry-After` gets: the answer once the store answers again (how an outage
    may be simulated can leave a broken connection behind, which costs one more 503 at most)."""
    for _ in range(20):
        response = await api.request(method, path, **options)
        if response.status_code != 503:
            return response
        await asyncio.sleep(0.1)
    raise AssertionError(f"{method} {path} still answers 503 after the store came back: {response.text}")


async def test_every_route_answers_503_while_the_store_is_down(served: Served, api: httpx.AsyncClient) -> None:
    flow = await created(api, "/v1/default/action-flows", {"name": "Outage", "variables": [], "steps": []})
    await created(api, f"/v1/default/action-flows/{flow['id']}/publish", {})
    hook = await created(api, f"/v1/default/action-flows/{flow['id']}/triggers", {"type": "webhook"})
    credential = await created(api, "/v1/default/credentials", {"name": "CRM", "roles": ["events"]})
    basic = (credential["clientId"], credential["clientSecret"])
    grant = {"grant_type": "client_credentials"}
    token = (await api.post("/oauth/token", data=grant, auth=basic)).json()
    bearer = {"authorization": f"Bearer {token['access_token']}"}
    start = {"flows": [{"target": {"usersById": ["u1"]}}]}
    event = {"eventName": "signed-up", "endUserId": "u1"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v1/default/action-flows", {}),
        ("POST", "/v1/default/action-flows", {"json": {"name": "During"}}),
        ("GET", f"/v1/default/triggers/{hook['id']}/requests", {}),
        ("POST", "/v1/default/events", {"json": event, "headers": bearer}),
        ("POST", f"/v1/default/action-flow/{flow['id']}/start", {"json": start, "headers": bearer}),
        ("GET", "/sfmc/any-key/config.json", {}),
        ("GET", "/marketo/any-key/status", {}),
    ]
    webhook = {"json": {"targetUserIds": ["u1"]}}
    with recorded("flowhook", "uvicorn.error") as log:
        async with served.store_down():
            for method, path, options in calls:
                answer = await api.request(method, path, **options)
                assert answer.status_code == 503, (method, path, answer.text)
                assert answer.json() == {
                    "error": {"code": "store_unavailable", "message": "the store is unavailable; retry later"}
                }
                assert answer.headers["retry-after"] == "5"
            hooked = await api.post(hook["url"], **webhook)
            assert hooked.status_code == 503, hooked.text
            assert hooked.json()["error"]["code"] == "store_unavailable"
            assert hooked.headers["retry-after"] == "5"
            oauth = await api.post("/oauth/token", data=grant, auth=basic)
            assert (oauth.status_code, oauth.json()) == (
                503,
                {"error": "temporarily_unavailable", "error_description": "the store is unavailable; retry later"},
            )
            assert (oauth.headers["retry-after"], oauth.headers["cache-control"]) == ("5", "no-store")
            scraped = await api.get("/metrics")
            assert scraped.status_code == 200, scraped.text
            figures = metrics(scraped.text)
            assert figures["flowhook_store_up"] == 0 and figures["webhook_503s"] >= 1
            assert "flowhook_invocations_pending" not in figures  # left out, not made up
            assert (await api.get("/readyz")).json()["checks"]["store"] == "failing"
    # A line a minute at most per process (an earlier test's outage may have logged this minute's), no traceback.
    answering = [record for record in log.records if record.name.startswith(("flowhook.ingress", "uvicorn"))]
    assert len(answering) <= 1 and all(record.getMessage().startswith("store unavailable") for record in answering)
    assert all(record.levelno == logging.WARNING and record.exc_info is None for record in answering)

    listed = await until_answered(api, "GET", "/v1/default/action-flows")
    assert listed.status_code == 200, listed.text
    assert metrics((await until_answered(api, "GET", "/metrics")).text)["flowhook_store_up"] == 1
    accepted = await until_answered(api, "POST", hook["url"], **webhook)
    assert accepted.status_code == 202, accepted.text


async def all_recovered(loops: list[BackgroundLoop]) -> None:
    """Until each loop has had a round that worked: an earlier outage may have left one in its back-off."""
    for _ in range(200):
        if not any(loop.streak.failures for loop in loops):
            return
        for loop in loops:
            loop.wake()
        await asyncio.sleep(0.05)
    raise AssertionError("a loop did not recover from an earlier outage")


async def test_background_loops_back_off_and_resume(served: Served, api: httpx.AsyncClient) -> None:
    flow = await created(api, "/v1/default/action-flows", {"name": "Resume", "variables": [], "steps": []})
    hook = await created(api, f"/v1/default/action-flows/{flow['id']}/triggers", {"type": "webhook"})
    services = served.services
    assert services.executor and services.dispatcher and services.bulk_runner and services.segment_evaluator
    await all_recovered([services.executor, services.dispatcher, services.bulk_runner, services.segment_evaluator])
    with recorded("flowhook.flows") as log:
        async with served.store_down():
            await asyncio.sleep(OUTAGE_SECONDS)
            attempts = services.executor.streak.failures
        # One traceback per loop, for the first failure; the next line would come after a minute.
        failed = log.starting(tuple(f"{loop} failed" for loop in LOOPS))
        assert all(record.exc_info is not None for record in failed)
        assert len(log.records) == len(failed) <= len(LOOPS), [record.getMessage() for record in log.records]
        assert {"executor", "event-dispatcher"} <= {record.getMessage().split()[0] for record in failed}
        assert 2 <= attempts <= 8  # back-off from 0.1 s: at most 0.05 + 0.1 + 0.2 + … s between attempts

        key = "after-the-outage"
        body = {"targetUserIds": ["u1"], "flowInvocationId": key}
        accepted = await until_answered(api, "POST", hook["url"], json=body)
        assert accepted.status_code == 202, accepted.text
        path = f"/v1/default/action-flows/{flow['id']}/invocations/{key}?mode=test"
        for _ in range(200):  # the arrival wakes the executor out of its back-off
            if (await api.get(path)).json()["status"] == "done":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the executor did not resume")
        [recovered] = log.starting("executor recovered")
        assert recovered.exc_info is None


async def test_a_store_error_that_is_a_bug_stays_a_500(
    served: Served, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A UNIQUE violation is the same at every retry: a bug of ours, not the store being away."""

    async def broken(*args: Any) -> None:
        raise sa.exc.IntegrityError("INSERT …", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))

    monkeypatch.setattr(served.services.store, "read", broken)
    with recorded("flowhook.ingress") as log:
        for path in ("/v1/default/action-flows", "/metrics"):
            answer = await api.get(path)
            assert (answer.status_code, answer.json()["error"]["code"]) == (500, "internal_error"), path
    assert len(log.records) == 2 and all(record.exc_info is not None for record in log.records)


def test_requests_meeting_the_outage_are_logged_a_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = UnavailableLog(clock=lambda: now[0])
    error = sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
    with caplog.at_level(logging.WARNING, logger="flowhook.ingress"):
        for _ in range(300):  # five minutes, a request a second
            log.note(error, "GET /action-flows")
            now[0] += 1.0
    assert [record.getMessage() for record in caplog.records] == [
        "store unavailable (ConnectionRefusedError: connection refused), met by GET /action-flows"
    ] + [
        "store unavailable (ConnectionRefusedError: connection refused), met by GET /action-flows; "
        "59 more requests met it since the last such line"
    ] * 4
    assert not any(record.exc_info for record in caplog.records)
