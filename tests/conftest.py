"""Fixtures every test directory shares: the anyio backend, a store, the app, `flowhook serve`.

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
from starlette.applications import Starlette

from ingress.app import create_app
from ingress.settings import Settings
from store import Store, database_url

Server = tuple[subprocess.Popen[bytes], str]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(database_url(None, tmp_path))
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
def _running_server(settings: Settings) -> Iterator[Server]:
    port = free_port()
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


@pytest.fixture
def running_server() -> Callable[[Settings], AbstractContextManager[Server]]:
    """`with running_server(settings) as (process, url)`: `flowhook serve` in its own process (crash tests kill it).

    Its settings reach it as FLOWHOOK_* variables, its output goes to
    `serve.log` in the data directory; it is stopped when the block ends.
    """
    return _running_server
