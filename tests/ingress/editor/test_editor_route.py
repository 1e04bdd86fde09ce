"""`GET /editor` and its static files: types, security headers, and nothing outside the editor's own files."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from ingress.editor import ASSETS, HERE

pytestmark = pytest.mark.anyio

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Markup(HTMLParser):
    """The tags of a page with their attributes, and whether any script or style is written inline."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "style" or "style" in attributes or any(name.startswith("on") for name in attributes):
            self.inline.append(tag)
        if tag == "script" and not attributes.get("src"):
            self.inline.append(tag)


def assert_secured(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/editor", "/editor/"])
async def test_the_page_is_html_with_its_security_headers_and_nothing_inline(api: httpx.AsyncClient, path: str) -> None:
    response = await api.get(path, headers={"authorization": ""})  # the page itself needs no token
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert_secured(response)
    markup = Markup()
    markup.feed(response.text)
    assert markup.inline == []
    scripts = [attributes["src"] for tag, attributes in markup.tags if tag == "script"]
    assert scripts == ["/editor/static/editor.js"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("editor.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("editor.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_a_static_file_is_served_with_its_type(api: httpx.AsyncClient, name: str, content_type: str) -> None:
    response = await api.get(f"/editor/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == (HERE / "static" / name).read_bytes()
    assert_secured(response)


async def test_every_module_the_page_imports_is_served(api: httpx.AsyncClient) -> None:
    imported = {
        name
        for path in ASSETS.values()
        if path.suffix == ".js"
        for name in re.findall(r'from "\./([\w.]+)"', path.read_text())
    }
    assert imported and imported <= set(ASSETS)


@pytest.mark.parametrize("name", ["app.py", "__init__.py", "index.html", "missing.js", ".js", "editor.js.map"])
async def test_an_unknown_name_is_a_404(api: httpx.AsyncClient, name: str) -> None:
    response = await api.get(f"/editor/static/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("raw_path", [b"/editor/static/../app.py", b"/editor/static/..%2Fapp.py", b"/editor/../app.py"])
async def test_a_path_outside_the_static_files_serves_no_code(app: Starlette, raw_path: bytes) -> None:
    """Sent as the raw path a server hands the app (httpx would normalise the dots away)."""
    status, body = await asgi_get(app, raw_path)
    assert status == 404
    assert b"import" not in body


async def asgi_get(app: Starlette, raw_path: bytes) -> tuple[int, bytes]:
    path = raw_path.replace(b"%2F", b"/").decode()  # what uvicorn decodes `path` to
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"flowhook.test")],
        "client": ("127.0.0.1", 40000),
        "server": ("flowhook.test", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:])


def test_the_scripts_never_parse_data_as_html() -> None:
    """A guard beside the browser tests: no API that turns a string into markup or code."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(\"on"
    )
    for path in ASSETS.values():
        if path.suffix == ".js":
            assert not forbidden.search(path.read_text()), path.name
