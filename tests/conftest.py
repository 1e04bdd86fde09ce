"""Fixtures every test directory shares: the anyio backend, a database and a store, the app, `flowhook serve`.

Tests run with `--import-mode=importlib`, so test modules cannot import one
another; what they share lives here, as fixtures. `app` and `api` run the
app of the `settings` fixture that the requesting directory defines.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from starlette.applications import Starlette

from ingress.app import create_app
from ingress.settings import Settings
from store import Store, database_url
from store.ids import new_id

Server = tuple[subprocess.Popen[bytes], str]

#: An admin URL of a PostgreSQL server the store tests may create databases on
#: (`.ci/postgres` starts one for CI); without it they run on SQLite only.
POSTGRES = os.environ.get("FLOWHOOK_TEST_POSTGRES")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def _fresh_postgres_database(tmp_path: Path) -> Iterator[URL]:
    """A new database on the FLOWHOOK_TEST_POSTGRES server, dropped afterwards; a skip without one."""
    if not POSTGRES:
        pytest.skip("PostgreSQL: set FLOWHOOK_TEST_POSTGRES to an admin URL (.ci/postgres starts a server)")
    admin_url = database_url(POSTGRES, tmp_path)
    name = new_id("flowhook_test")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield admin_url.set(database=name)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[URL]:
    """A new, empty database: an SQLite file, and a PostgreSQL database when FLOWHOOK_TEST_POSTGRES is set."""
    if request.param == "sqlite":
        yield database_url(None, tmp_path)
        return
    with _fresh_postgres_database(tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def postgres_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[URL]:
    """One PostgreSQL database for a whole module (an app per module); a skip without a server."""
    with _fresh_postgres_database(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture
async def store(database: URL) -> AsyncIterator[Store]:
    """A store on `database`, acknowledging at COMMIT (no fsync: the tests do not outlive a machine crash)."""
    opened = await Store.open(database, fsync=False)
    yield opened
    await opened.close()


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """The real app for `settings`, inside its lifespan (store, sandbox pool, executor started)."""
    started = create_app(settings)
    async with started.router.lifespan_context(started):
        yield started


@pytest.fixture(scope="module")
async def api(app: Starlette, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` through its ASGI interface, sending the admin token."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://flowhook.test",
        headers={"authorization": f"Bearer {settings.admin_token}"},
    ) as client:
        yield client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _running_server(settings: Settings, port: int | None = None) -> Iterator[Server]:
    port = port or free_port()
    code = f"from ingress.serve import serve; serve(host='127.0.0.1', port={port}, data_dir={str(settings.data_dir)!r})"
    log_path = settings.data_dir / "serve.log"
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code], env={**os.environ, **settings.to_env()}, stdout=log, stderr=log
        )
        try:
            _wait_until_up(process, url, log_path)
            yield process, url
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the server did not start")


@pytest.fixture(scope="session")
def running_server() -> Callable[..., AbstractContextManager[Server]]:
    """`with running_server(settings) as (process, url)`: `flowhook serve` in its own process (crash tests kill it).

    `port=` starts it on that port (a restart that a browser page must reach at the same origin), a free one
    by default.

    Its settings reach it as FLOWHOOK_* variables, its output goes to
    `serve.log` in the data directory; it is stopped when the block ends.
    """
    return _running_server
