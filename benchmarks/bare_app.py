"""The reference for end-to-end ingestion: a bare Starlette handler that
reads the body and answers 202, served exactly like `flowhook serve`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def accept(request: Request) -> Response:
    await request.body()
    return Response(b'{"accepted":true}', status_code=202, media_type="application/json")


app = Starlette(routes=[Route("/hooks/{hook_id}", accept, methods=["POST", "PUT"])])
