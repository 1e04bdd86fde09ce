"""User JavaScript stays behind the sandbox workers, whatever it does or is given.

Saving a mapping compiles it in the previews' sandbox worker, since compiling
runs the source's top level: the server never makes a QuickJS engine. A result
nested deeper than the host's JSON readers go, or a sender's body deeper than
the request's JSON writer goes, is a clear error for that one request, and every
later request is mapped as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mapper.javascript import Engine

pytestmark = pytest.mark.anyio

PREVIEW = "/v1/default/mappings/preview"
MAPPED = "function map(request) { return {targetUserIds: ['u1']}; }"
DEEP_OUTPUT = (
    "function map(request) {\n"
    "  let nested = [];\n"
    "  for (let i = 0; i < request.body.levels; i++) nested = [nested];\n"
    "  return {targetUserIds: ['u1'], variables: {nested}};\n"
    "}"
)


def javascript(source: str) -> dict[str, str]:
    return {"kind": "javascript", "source": source}


@pytest.fixture
def no_engine_in_the_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app under test runs in this process, its sandbox workers in their own: an engine made here fails."""

    def refuse(self: Engine, source: str, *args: Any) -> None:
        raise AssertionError(f"user JavaScript was compiled in the server: {source!r}")

    monkeypatch.setattr(Engine, "__init__", refuse)
    yield


async def test_saving_a_javascript_mapping_runs_its_top_level_in_a_sandbox_worker(
    flowhook: Any, no_engine_in_the_server: None
) -> None:
    flow = await flowhook.flow()
    url = f"/v1/default/action-flows/{flow['id']}/triggers"
    created = await flowhook.api.post(url, json={"type": "webhook", "mapping": javascript(MAPPED)})
    assert created.status_code == 201, created.text
    [worker] = flowhook.services.previews.workers
    assert worker.pid not in {live.pid for live in flowhook.services.pool.workers}

    throws = javascript("const ready = false;\nif (!ready) throw new Error('not configured');\nfunction map() {}")
    refused = await flowhook.api.post(url, json={"type": "webhook", "mapping": throws})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["message"], error["line"]) == (
        "invalid_mapping",
        "top-level code threw Error: not configured",
        2,
    )
    looping = javascript("while (true) {}\nfunction map(request) { return null; }")
    patched = await flowhook.api.patch(f"/v1/default/triggers/{created.json()['id']}", json={"mapping": looping})
    assert patched.status_code == 422, patched.text
    assert patched.json()["error"]["message"] == "top-level code: the mapping exceeded the time limit of 1000 ms"

    previewed = await flowhook.api.post(PREVIEW, json={"mapping": javascript(MAPPED), "request": {"body": {}}})
    assert previewed.status_code == 200 and previewed.json()["output"] == {"targetUserIds": ["u1"]}


async def test_a_source_that_escapes_its_function_is_refused_at_save(flowhook: Any) -> None:
    escape = "}); let calls = 0; (function () {\nfunction map(request) { return {targetUserIds: ['u' + ++calls]}; }"
    flow = await flowhook.flow()
    refused = await flowhook.api.post(
        f"/v1/default/action-flows/{flow['id']}/triggers", json={"type": "webhook", "mapping": javascript(escape)}
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "invalid_mapping" and refused.json()["error"]["line"] == 1


@pytest.mark.parametrize("levels", [1100, 3000])
async def test_a_result_too_deep_to_read_is_a_mapping_error_and_the_sandbox_carries_on(
    flowhook: Any, levels: int
) -> None:
    """Such a result killed the sandbox slot for good: every later JavaScript webhook hung."""
    deep = await flowhook.trigger(mapping=javascript(DEEP_OUTPUT))
    other = await flowhook.trigger(mapping=javascript(MAPPED))
    for _ in range(2):
        answer = await flowhook.post(deep, f'{{"levels": {levels}}}')
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "mapping_error"
        entry = await flowhook.entry(answer.json()["error"]["requestId"])
        assert entry["mapping"]["error"]["type"] == "InvalidOutput"
        assert entry["mapping"]["error"]["message"] == "the result is nested deeper than 64 levels"
    assert (await flowhook.post(other)).status_code == 202


async def test_a_preview_of_a_result_too_deep_to_read_says_so_and_the_next_preview_runs(flowhook: Any) -> None:
    previewed = await flowhook.api.post(
        PREVIEW, json={"mapping": javascript(DEEP_OUTPUT), "request": {"body": {"levels": 1100}}}
    )
    assert previewed.status_code == 200, previewed.text
    assert previewed.json()["error"]["type"] == "InvalidOutput"
    after = await flowhook.api.post(PREVIEW, json={"mapping": javascript(MAPPED), "request": {"body": {}}})
    assert after.status_code == 200 and after.json()["ok"] is True


@pytest.mark.parametrize("levels", [254, 300, 1000])
async def test_a_body_too_deep_for_a_javascript_mapping_is_a_mapping_error(flowhook: Any, levels: int) -> None:
    """orjson, writing the request for the engine, stops at 255 levels: its TypeError was a 500."""
    trigger = await flowhook.trigger(mapping=javascript(MAPPED))
    answer = await flowhook.post(trigger, "[" * levels + "]" * levels)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "mapping_error"
    entry = await flowhook.entry(answer.json()["error"]["requestId"])
    assert entry["mapping"]["error"]["type"] == "InvalidRequest"
    assert entry["mapping"]["error"]["message"] == (
        "the request body is nested deeper than 253 levels, too deep for a JavaScript mapping"
    )
    assert (await flowhook.post(trigger, "[" * 253 + "]" * 253)).status_code == 202
