"""A running flowhook app per test module, driven over HTTP with httpx.

The app is the real one (store on a temp SQLite file, sandbox pool,
lifespan: the `app` and `api` fixtures of tests/conftest.py run it with
`settings` below); httpx talks to it through its ASGI interface, with the
client address of our choosing. Each module gets one app so the sandbox
workers start once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from authlib.integrations.httpx_client import AsyncOAuth2Client
from sqlalchemy.engine import URL
from starlette.applications import Starlette

from ingress.services import Services
from ingress.settings import Settings

ADMIN_TOKEN = "fh_admin_test-token-0123456789"
CLIENT_IP = "203.0.113.7"


@dataclass
class Flowhook:
    """The app under test and shortcuts for what most tests do through its API."""

    app: Starlette
    api: httpx.AsyncClient
    data_dir: Path
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    admin_token: str = ADMIN_TOKEN

    @property
    def services(self) -> Services:
        found: Services = self.app.state.services
        return found

    def sender(self, ip: str = CLIENT_IP) -> httpx.AsyncClient:
        """A client without the admin token, calling from `ip`."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=(ip, 40000)), base_url="http://flowhook.test"
        )
        self.clients.append(client)
        return client

    async def flow(self, *, publish: bool = False, env: str = "default", **body: Any) -> dict[str, Any]:
        response = await self.api.post(f"/v1/{env}/action-flows", json={"name": "Welcome", **body})
        assert response.status_code == 201, response.text
        flow: dict[str, Any] = response.json()
        if publish:
            published = await self.api.post(f"/v1/{env}/action-flows/{flow['id']}/publish")
            assert published.status_code == 200, published.text
            flow = published.json()
        return flow

    async def card_flow(self, title: str = "Hi", *, publish: bool = True) -> dict[str, Any]:
        """A flow whose one step sends a published card titled `title`."""
        template = await self.api.post("/v1/default/card-templates", json={"name": "t", "definition": {"title": title}})
        assert template.status_code == 201, template.text
        template_id = template.json()["id"]
        published = await self.api.post(f"/v1/default/card-templates/{template_id}/publish")
        assert published.status_code == 200, published.text
        return await self.flow(publish=publish, steps=[{"type": "send-card", "id": "s", "cardTemplateId": template_id}])

    async def trigger(self, flow: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
        flow = flow or await self.flow()
        response = await self.api.post(f"/v1/{flow['environmentId']}/action-flows/{flow['id']}/triggers", json=body)
        assert response.status_code == 201, response.text
        trigger: dict[str, Any] = response.json()
        return trigger

    async def post(
        self,
        trigger: dict[str, Any],
        body: bytes | str = b"{}",
        *,
        ip: str = CLIENT_IP,
        method: str = "POST",
        **headers: str,
    ) -> httpx.Response:
        """Deliver a webhook; `content_type` defaults to JSON."""
        all_headers = {"content-type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
        content = body.encode() if isinstance(body, str) else body
        return await self.sender(ip).request(
            method, f"/hooks/{trigger['hookId']}", content=content, headers=all_headers
        )

    async def log(self, trigger: dict[str, Any], **params: Any) -> list[dict[str, Any]]:
        response = await self.api.get(f"/v1/default/triggers/{trigger['id']}/requests", params=params)
        assert response.status_code == 200, response.text
        entries: list[dict[str, Any]] = response.json()["data"]
        return entries

    async def entry(self, request_id: str) -> dict[str, Any]:
        response = await self.api.get(f"/v1/default/requests/{request_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    async def expanded(self, flow: dict[str, Any], key: str, within_s: float = 10.0) -> None:
        """Wait until the executor has expanded the flow's test invocation `key`."""
        url = f"/v1/{flow['environmentId']}/action-flows/{flow['id']}/invocations/{key}?mode=test"
        started = time.monotonic()
        while time.monotonic() - started < within_s:
            response = await self.api.get(url)
            assert response.status_code == 200, response.text
            if response.json()["status"] == "done":
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"invocation {key} was not started within {within_s} s")

    async def credential(self, roles: tuple[str, ...] = ("events",), env: str = "default") -> dict[str, Any]:
        """A new API credential, with its secret (shown this once)."""
        response = await self.api.post(f"/v1/{env}/credentials", json={"name": "CRM", "roles": list(roles)})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def oauth_client(self, credential: dict[str, Any], auth_method: str = "client_secret_basic") -> AsyncOAuth2Client:
        """authlib's OAuth2 client-credentials client for `credential`, talking to the app."""
        client = AsyncOAuth2Client(
            credential["clientId"],
            credential["clientSecret"],
            token_endpoint_auth_method=auth_method,
            token_endpoint="http://flowhook.test/oauth/token",
            grant_type="client_credentials",
            transport=httpx.ASGITransport(app=self.app, client=(CLIENT_IP, 40000)),
            base_url="http://flowhook.test",
        )
        self.clients.append(client)
        return client

    async def api_client(self, env: str = "default") -> AsyncOAuth2Client:
        """An OAuth2 client of a new `events` credential, holding an access token."""
        client = self.oauth_client(await self.credential(env=env))
        await client.fetch_token()
        return client


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def either_database(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that run a module's app on SQLite, then again on PostgreSQL (skipped without a server):
    the module's `settings_overrides` returns them, with its own."""
    if request.param == "sqlite":
        return {}
    database: URL = request.getfixturevalue("postgres_database")
    return {"database": database.render_as_string(hide_password=False), "durability": "os"}


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to run its app with other settings."""
    return {}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, settings_overrides: dict[str, Any]) -> Settings:
    data_dir = tmp_path_factory.mktemp("flowhook")
    return Settings(data_dir=data_dir, admin_token=ADMIN_TOKEN, sandbox_workers=1, **settings_overrides)


@pytest.fixture(scope="module")
async def flowhook(app: Starlette, api: httpx.AsyncClient, settings: Settings) -> AsyncIterator[Flowhook]:
    service = Flowhook(app, api, settings.data_dir)
    yield service
    for client in service.clients:
        await client.aclose()


class CallbackReceiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 (a thread of its own) that records every callback POSTed to it (Marketo's):
    its headers, lower-cased, and its JSON body; it answers `status`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CallbackHandler)
        self.calls: list[tuple[dict[str, str], Any]] = []
        self.status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/callback"


class _CallbackHandler(BaseHTTPRequestHandler):
    server: CallbackReceiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.calls.append(({name.lower(): value for name, value in self.headers.items()}, orjson.loads(body)))
        self.send_response(self.server.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    """A running CallbackReceiver, stopped after the test (a test may stop it first)."""
    server = CallbackReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@asynccontextmanager
async def _uvicorn_on_loopback(app: Starlette, options: dict[str, Any]) -> AsyncIterator[int]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    options = {name: value for name, value in options.items() if name != "loop"}  # the test's loop runs it
    running = uvicorn.Server(uvicorn.Config(app, log_level="warning", **options))
    task = asyncio.create_task(running.serve(sockets=[listener]))
    while not running.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.01)
    try:
        yield listener.getsockname()[1]
    finally:
        running.should_exit = True
        await task
        listener.close()


@pytest.fixture(scope="session")
def uvicorn_on_loopback() -> Callable[[Starlette, dict[str, Any]], AbstractAsyncContextManager[int]]:
    """`async with uvicorn_on_loopback(app, options) as port`: real uvicorn (`options` as `serve` gives
    them) serving `app` on a loopback port, in the test's event loop."""
    return _uvicorn_on_loopback
