"""A flow's variable declarations: each problem said once, at its own path."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


async def test_an_empty_variable_name_is_one_problem_at_its_path(flowhook) -> None:
    body = {"name": "f", "variables": [{"name": "", "default": "x"}], "steps": []}
    response = await flowhook.api.post("/v1/default/action-flows", json=body)
    assert response.status_code == 422
    assert [problem["path"] for problem in response.json()["error"]["errors"]] == ["$.variables[0].name"]
