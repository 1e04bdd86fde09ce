"""A query parameter an operation does not take is a 400 `unknown_parameter`, as Stripe's `parameter_unknown`.

Ignored, a misspelt or invented filter (`GET /customers?filter=bucket`)
answered a page of everything, and the caller believed it had filtered.
What an operation takes is what the OpenAPI document lists for it, the one
source of truth: read once, when the app is built, into a wrapper of each
route's ASGI app. The wrapper runs after Starlette's method check (a 405
comes first) and before the endpoint; a request without a query string
costs it one test.

So it runs before authentication, unlike Stripe (which answers a request
without a key 401 whatever it asks): it depends only on the method and the
route's template, never on a secret, a key or stored data, and what it
answers (the parameters an operation takes) is in /openapi.json, served to
anyone: an unauthenticated caller learns nothing new. One rule in one
place beats a check in each kind of authentication.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ingress.api.common import refuse_unreadable_query
from ingress.errors import ApiError

#: Routes (templates, `{}` for each path parameter) that take parameters of others, so take any:
#: - a webhook: its sender (Stripe, Shopify, Svix, a form) may add its own, and a mapping reads `request.query`;
#: - the OAuth token endpoint: RFC 6749 §3.2 has it ignore the parameters it does not know;
#: - the service's probes and this document: load balancers, scrapers (Prometheus' `params`) and API viewers
#:   may add their own or a cache-buster, and they take none;
#: - the editor's page and assets, not in the document: a browser's cache-buster (its JSON calls are checked);
#: - what Salesforce Marketing Cloud's Journey Builder and Marketo call: their URLs come from our config.json
#:   and service definition, but what those platforms add to them is theirs, and a refusal there would stop a
#:   journey or a campaign over a parameter nobody reads.
EXEMPT = frozenset(
    {
        *(f"/sfmc/{{}}/{name}" for name in ("config.json", "execute", "save", "publish", "validate", "stop")),
        *(f"/marketo/{{}}/{name}" for name in ("serviceDefinition.json", "getServiceDefinition", "status")),
        "/marketo/{}/submitAsyncAction",
        "/hooks/{}",
        "/hooks/{}/",
        "/oauth/token",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/editor",
        "/editor/",
        "/editor/static/{}",
    }
)
CODE = "unknown_parameter"
#: The keys of an OpenAPI path item that are operations (the others: its shared `parameters`, a summary…).
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_PATH_PARAMETER = re.compile(r"\{[^}]*\}")

#: Per method, the names of the query parameters an operation takes, in the document's order.
Taken = Mapping[str, tuple[str, ...]]


def template(path: str) -> str:
    """A route's or a document's path with each parameter `{}`: `{flow_id}` and `{flowId}`, `{userId:path}`
    and `{userId}` are one."""
    return _PATH_PARAMETER.sub("{}", path)


def documented(document: dict[str, Any]) -> dict[str, dict[str, tuple[str, ...]]]:
    """Per path template and method (upper case), the query parameters the OpenAPI `document` lists, the
    path item's shared ones with the operation's own."""
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for path, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method in HTTP_METHODS:
                listed = (*shared, *operation.get("parameters", []))
                names = tuple(parameter["name"] for parameter in listed if parameter["in"] == "query")
                found.setdefault(template(path), {})[method.upper()] = names
    return found


def refuse_unknown(request: Request, taken: tuple[str, ...]) -> None:
    """A 400 naming the first parameter of the query not in `taken` (one whose name is not even readable
    gets that 400 instead), and what the operation takes."""
    for name in request.query_params:
        if name not in taken:
            refuse_unreadable_query(request)
            listed = ", ".join(taken) if taken else "none"
            raise ApiError(400, CODE, f"unknown query parameter {name!r}: this operation takes {listed}")


class KnownParameters:
    """A route's ASGI app behind `refuse_unknown`, with what each of the route's methods takes."""

    def __init__(self, app: ASGIApp, taken: Taken) -> None:
        self.app = app
        self._taken = taken

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["query_string"]:
            refuse_unknown(Request(scope), self._taken.get(scope["method"], ()))
        await self.app(scope, receive, send)


def check_queries(routes: Iterable[BaseRoute], document: dict[str, Any]) -> None:
    """Put each route but the EXEMPT ones (Mounts walked) behind the check of what `document` lists for it;
    a method the document does not describe takes none (tests/ingress/test_unknown_parameters.py fails then).

    Routes are module-level objects that every app built shares, so a route already behind the check is
    put behind it anew, not twice.
    """
    _wrap(routes, "", documented(document))


def _wrap(routes: Iterable[BaseRoute], prefix: str, listed: dict[str, dict[str, tuple[str, ...]]]) -> None:
    for route in routes:
        if isinstance(route, Mount):
            _wrap(route.routes, prefix + route.path, listed)
        elif isinstance(route, Route) and template(prefix + route.path) not in EXEMPT:
            taken = dict(listed.get(template(prefix + route.path), {}))
            if "GET" in taken:
                taken["HEAD"] = taken["GET"]
            app = route.app.app if isinstance(route.app, KnownParameters) else route.app
            route.app = KnownParameters(app, taken)
