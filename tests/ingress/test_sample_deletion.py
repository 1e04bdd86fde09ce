"""A sample can be deleted: `DELETE …/triggers/{triggerId}/samples/{sampleId}`, 204, and 404 for one the
trigger does not have."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.anyio


async def paste(flowhook: Any, trigger: dict[str, Any], body: str) -> str:
    pasted = await flowhook.api.post(f"/v1/default/triggers/{trigger['id']}/samples", json={"body": body})
    assert pasted.status_code == 201, pasted.text
    return str(pasted.json()["id"])


def code(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_a_deleted_sample_leaves_the_list_and_the_others_stay(flowhook: Any) -> None:
    trigger = await flowhook.trigger()
    url = f"/v1/default/triggers/{trigger['id']}/samples"
    first, second = await paste(flowhook, trigger, "one"), await paste(flowhook, trigger, "two")
    deleted = await flowhook.api.delete(f"{url}/{first}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert [sample["id"] for sample in (await flowhook.api.get(url)).json()["data"]] == [second]
    assert code(await flowhook.api.delete(f"{url}/{first}")) == (404, "sample_not_found")  # gone already
    preview = {"mapping": {"kind": "passthrough"}, "sampleId": first}
    assert (await flowhook.api.post("/v1/default/mappings/preview", json=preview)).status_code == 404


async def test_a_sample_is_deleted_only_under_its_own_trigger(flowhook: Any) -> None:
    mine, other = await flowhook.trigger(), await flowhook.trigger()
    sample = await paste(flowhook, mine, "kept")
    under_other = await flowhook.api.delete(f"/v1/default/triggers/{other['id']}/samples/{sample}")
    assert code(under_other) == (404, "sample_not_found")
    nowhere = await flowhook.api.delete(f"/v1/default/triggers/trg_nosuch/samples/{sample}")
    assert code(nowhere) == (404, "trigger_not_found")
    elsewhere = await flowhook.api.post("/v1/environments", json={"id": "staging", "name": "Staging"})
    assert elsewhere.status_code == 201, elsewhere.text
    other_env = await flowhook.api.delete(f"/v1/staging/triggers/{mine['id']}/samples/{sample}")
    assert code(other_env) == (404, "trigger_not_found")
    listed = (await flowhook.api.get(f"/v1/default/triggers/{mine['id']}/samples")).json()["data"]
    assert [found["id"] for found in listed] == [sample]
