"""A query parameter an operation does not take is a 400 `unknown_parameter`, on every route but the exempt ones.

`GET /v1/default/customers?filter=bucket` listed every customer: the caller
believed it had filtered. What each operation takes is what /openapi.json
lists for it (ingress.api.known_parameters); webhooks, the OAuth token
endpoint, the probes and the editor's page take anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.routing import Mount, Route

from ingress.api.known_parameters import EXEMPT, HTTP_METHODS, template

pytestmark = pytest.mark.anyio


def refused(answer: Any, name: str, taken: str) -> None:
    assert answer.status_code == 400, answer.text
    assert answer.json() == {
        "error": {
            "code": "unknown_parameter",
            "message": f"unknown query parameter {name!r}: this operation takes {taken}",
        }
    }


async def operations(flowhook: Any) -> list[tuple[str, str, tuple[str, ...]]]:
    """Each checked operation of the document: method, path, and the query parameters it lists."""
    document: dict[str, Any] = (await flowhook.sender().get("/openapi.json")).json()
    found: list[tuple[str, str, tuple[str, ...]]] = []
    for path, item in document["paths"].items():
        if template(path) in EXEMPT:
            continue
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method != "parameters":
                listed = (*shared, *operation.get("parameters", []))
                found.append((method.upper(), path, tuple(p["name"] for p in listed if p["in"] == "query")))
    return found


def concrete(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda name: ids.get(name.group(1), "x"), path)


async def test_the_query_of_the_qa_report_is_refused_not_ignored(flowhook) -> None:
    await flowhook.api.put("/v1/default/customers/c-1", json={"attributes": {}})
    refused(await flowhook.api.get("/v1/default/customers?filter=bucket"), "filter", "limit, cursor")
    refused(await flowhook.api.get("/v1/default/customers?limit=1&filter=&zzz=1"), "filter", "limit, cursor")
    assert (await flowhook.api.get("/v1/default/customers?limit=1")).status_code == 200


async def test_every_operation_refuses_a_parameter_it_does_not_take(flowhook) -> None:
    checked = 0
    for method, path, taken in await operations(flowhook):
        answer = await flowhook.api.request(method, concrete(path, {"env": "default"}) + "?zzz=1")
        assert answer.status_code == 400, (method, path, answer.text)
        refused(answer, "zzz", ", ".join(taken) or "none")
        checked += 1
    assert checked > 70


async def test_every_parameter_the_document_lists_is_what_the_route_reads(flowhook, monkeypatch) -> None:
    """Asked with no query, each operation reads (`QueryParams.get`) exactly the parameters the document lists
    for it: one it reads and the document leaves out would be refused, one it lists and never reads ignored.
    GETs, and the bulk replay, run on a real flow and webhook trigger; the rest on ids that do not exist."""
    flow = await flowhook.flow()
    trigger = await flowhook.trigger(flow)
    real = {"env": "default", "flowId": flow["id"], "triggerId": trigger["id"]}
    read: list[str] = []
    original = QueryParams.__getitem__

    def spied(self: QueryParams, name: str) -> str:
        read.append(name)
        return original(self, name)

    monkeypatch.setattr(QueryParams, "__getitem__", spied)
    for method, path, taken in await operations(flowhook):
        read.clear()
        ids = real if method == "GET" or taken else {"env": "default"}
        answer = await flowhook.api.request(method, concrete(path, ids))
        assert answer.status_code < 500, (method, path, answer.text)
        assert set(read) == set(taken), (method, path, read, answer.text)


async def test_an_unauthenticated_caller_gets_the_400_too(flowhook) -> None:
    """The check runs before authentication: it tells no more than /openapi.json, served to anyone."""
    refused(await flowhook.sender().get("/v1/default/customers?filter=bucket"), "filter", "limit, cursor")
    assert (await flowhook.sender().get("/v1/default/customers")).status_code == 401


async def test_head_takes_what_get_takes_and_a_wrong_method_is_still_a_405(flowhook) -> None:
    assert (await flowhook.api.head("/v1/default/customers?limit=1")).status_code == 200
    assert (await flowhook.api.head("/v1/default/customers?zzz=1")).status_code == 400
    assert (await flowhook.api.patch("/v1/default/customers?zzz=1")).status_code == 405


async def test_an_unknown_name_that_is_not_even_readable_says_so(flowhook) -> None:
    answer = await flowhook.api.get("/v1/default/customers?%FFx=1")
    assert answer.json()["error"] == {
        "code": "invalid_parameter",
        "message": "query parameter '\ufffdx' has a percent-escape that is not UTF-8",
    }


async def test_a_webhook_takes_the_parameters_its_sender_adds_and_its_mapping_reads_them(flowhook) -> None:
    mapping = {"kind": "jmespath", "fields": {"targetUserIds": "[query.user]"}}
    trigger = await flowhook.trigger(await flowhook.flow(publish=True), mode="live", mapping=mapping)
    for path in (f"/hooks/{trigger['hookId']}", f"/hooks/{trigger['hookId']}/"):
        answer = await flowhook.sender().post(f"{path}?user=u-7&utm_source=stripe", json={})
        assert answer.status_code == 202, answer.text
        entry = await flowhook.entry(answer.json()["requestId"])
        assert "utm_source=stripe" in entry["query"]


async def test_the_token_endpoint_the_probes_and_the_editor_page_take_anything(flowhook) -> None:
    credential = await flowhook.credential()
    token = await flowhook.sender().post(
        "/oauth/token?zzz=1",
        data={"grant_type": "client_credentials"},
        auth=(credential["clientId"], credential["clientSecret"]),
    )
    assert token.status_code == 200, token.text
    for url in ("/healthz?zzz=1", "/readyz?zzz=1", "/openapi.json?v=2", "/editor?v=2", "/editor/?v=2"):
        assert (await flowhook.sender().get(url)).status_code == 200, url
    assert (await flowhook.api.get("/metrics?zzz=1")).status_code == 200


async def test_what_sfmc_and_marketo_call_takes_their_parameters(flowhook) -> None:
    """Their platforms call URLs of ours, with what parameters they like: the key decides, not the query."""
    for method, path in (("GET", "/marketo/nokey/status"), ("POST", "/sfmc/nokey/execute")):
        answer = await flowhook.sender().request(method, f"{path}?zzz=1")
        assert answer.status_code != 400, (path, answer.text)
        assert answer.status_code == (await flowhook.sender().request(method, path)).status_code


async def test_every_exemption_names_a_route_and_every_other_route_is_documented(flowhook, app: Starlette) -> None:
    """A method of a route the document leaves out would take no query parameter, whatever it reads."""

    def routes(found: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
        for route in found:
            if isinstance(route, Mount):
                yield from routes(route.routes, prefix + route.path)
            else:
                assert isinstance(route, Route)
                yield from ((method, template(prefix + route.path)) for method in route.methods or ("*",))

    served = set(routes(app.router.routes))
    assert EXEMPT <= {path for _, path in served}
    documented = {(method, template(path)) for method, path, _ in await operations(flowhook)}
    assert {(method, path) for method, path in served if path not in EXEMPT and method != "HEAD"} == documented


async def test_the_document_lists_the_400_on_every_operation_that_refuses_and_on_no_exempt_one(flowhook) -> None:
    """Every operation of a checked route lists the 400, which says what `unknown_parameter` is (the shared
    answer, or the operation's own 400 with it added); an exempt one never gains it for that."""
    document: dict[str, Any] = (await flowhook.sender().get("/openapi.json")).json()
    shared = document["components"]["responses"]["Error400"]
    assert "unknown_parameter" in shared["description"]
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            refused = operation["responses"].get("400")
            if template(path) in EXEMPT:
                assert refused is None or "$ref" in refused or "unknown_parameter" not in refused["description"]
                continue
            assert refused is not None, (method, path)
            described = shared if refused == {"$ref": "#/components/responses/Error400"} else refused
            assert "unknown_parameter" in described["description"], (method, path)
            checked += 1
    assert checked > 70
    for probe in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert "400" not in document["paths"][probe]["get"]["responses"], probe
