"""The mapping editor: `GET /editor`, a static page that drives the public management API.

The page and its assets ship inside this package. It runs with the admin
token, so everything is served under a Content-Security-Policy that allows
only our own script, style and API calls (no inline code, no third party,
no framing), without caching and without a Referer.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingress.errors import ApiError

HERE = Path(__file__).parent
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: The assets by name, fixed when the module loads: a request can only name one of them, never a path.
ASSETS = {path.name: path for path in (HERE / "static").iterdir() if path.suffix in CONTENT_TYPES}


def _file_response(path: Path, content_type: str) -> Response:
    return Response(path.read_bytes(), headers=SECURITY_HEADERS, media_type=content_type)


async def page(request: Request) -> Response:
    return _file_response(HERE / "index.html", "text/html; charset=utf-8")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    path = ASSETS.get(name)
    if path is None:
        raise ApiError(404, "not_found", "the editor has no such file")
    return _file_response(path, CONTENT_TYPES[path.suffix])


routes = [
    Route("/editor", page, methods=["GET"]),
    Route("/editor/", page, methods=["GET"]),
    Route("/editor/static/{name}", asset, methods=["GET"]),
]
