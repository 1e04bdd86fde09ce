"""The admin token: generated and shown once at first start (only its hash kept), or set by FLOWHOOK_ADMIN_TOKEN."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from ingress.app import create_app
from ingress.settings import Settings

pytestmark = pytest.mark.anyio


async def status_with(settings: Settings, token: str) -> int:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flowhook.test") as client:
            response = await client.get("/v1/default/action-flows", headers={"authorization": f"Bearer {token}"})
            return response.status_code


async def test_generated_once_shown_once_stored_hashed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(data_dir=tmp_path, sandbox_workers=1)
    assert await status_with(settings, "guess") == 401
    shown = re.findall(r"admin token \(shown once, store it now\): (\S+)", capsys.readouterr().out)
    assert len(shown) == 1
    token = shown[0]
    assert await status_with(settings, token) == 200
    assert "admin token" not in capsys.readouterr().out  # not shown again
    database = b"".join(path.read_bytes() for path in tmp_path.glob("flowhook.db*"))
    assert token.encode() not in database


async def test_the_environment_variable_sets_the_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"FLOWHOOK_ADMIN_TOKEN": "my-own-token-0123456789", "FLOWHOOK_SANDBOX_WORKERS": "1"}
    settings = Settings.from_env(environ, data_dir=tmp_path)
    assert (settings.admin_token, settings.sandbox_workers) == ("my-own-token-0123456789", 1)
    assert await status_with(settings, "my-own-token-0123456789") == 200
    assert "admin token" not in capsys.readouterr().out
