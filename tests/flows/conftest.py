"""A running flowhook app per test module, with its executor, driven over HTTP with httpx.

The app is the real one (store on a temp SQLite file, sandbox pool,
executor in the lifespan: the `app` and `api` fixtures of tests/conftest.py
run it with `settings` below). Tests start flows through webhooks (the real
pipeline), then either `settle()` (run executor batches until nothing is due
now) or poll with `eventually()` for timers to fire: no sleeping for fixed
times, no assertions on timing.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from ingress.services import Services
from ingress.settings import Settings

ADMIN_TOKEN = "fh_admin_flows-test-token-0123456789"
T = TypeVar("T")
_keys = itertools.count()


def card_wait_flow(template_id: str, timeout: str = "P1D", **card_options: str) -> list[dict[str, Any]]:
    """A card, a wait for its completion (or `timeout`), then `thanks` or `reminder`."""
    return [
        {"type": "send-card", "id": "offer", "cardTemplateId": template_id, "cardOptions": card_options},
        {"type": "wait", "id": "answer", "for": {"action": "card-completed", "stepId": "offer"}, "timeout": timeout},
        {
            "type": "branch",
            "id": "how",
            "condition": "steps.answer.outcome == 'card-completed'",
            "then": [{"type": "send-card", "id": "thanks", "cardTemplateId": template_id}],
            "else": [{"type": "send-card", "id": "reminder", "cardTemplateId": template_id}],
        },
    ]


@dataclass
class Flowhook:
    app: Starlette
    api: httpx.AsyncClient

    @property
    def services(self) -> Services:
        found: Services = self.app.state.services
        return found

    async def ok(self, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.api.request(method, url, **kwargs)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    async def template(
        self, definition: dict[str, Any], *, publish: bool = False, name: str = "Card"
    ) -> dict[str, Any]:
        template = await self.ok(
            "POST", "/v1/default/card-templates", 201, json={"name": name, "definition": definition}
        )
        if publish:
            template = await self.ok("POST", f"/v1/default/card-templates/{template['id']}/publish")
        return template  # type: ignore[no-any-return]

    card_wait_steps = staticmethod(card_wait_flow)

    async def start_card_wait(self, user: str, **wait: str) -> tuple[dict[str, Any], str]:
        """A `card_wait_flow` started for the test user `user`: the flow and its flowInvocationId."""
        template = await self.template({"title": "t"})
        flow = await self.flow(card_wait_flow(template["id"], **wait))
        trigger = await self.trigger(flow)
        await self.test_user(user)
        return flow, await self.start(trigger, [user])

    async def flow(self, steps: list[dict[str, Any]], *, publish: bool = False, **body: Any) -> dict[str, Any]:
        flow = await self.ok("POST", "/v1/default/action-flows", 201, json={"name": "Flow", "steps": steps, **body})
        if publish:
            flow = await self.ok("POST", f"/v1/default/action-flows/{flow['id']}/publish")
        return flow  # type: ignore[no-any-return]

    async def trigger(self, flow: dict[str, Any], mode: str = "test") -> dict[str, Any]:
        url = f"/v1/default/action-flows/{flow['id']}/triggers"
        return await self.ok("POST", url, 201, json={"mode": mode})  # type: ignore[no-any-return]

    async def test_user(self, user_id: str, **body: Any) -> None:
        await self.ok("POST", "/v1/default/test-users", 201, json={"userId": user_id, **body})

    async def start(self, trigger: dict[str, Any], users: list[str], **payload: Any) -> str:
        """Deliver a webhook starting the flow for `users`; its flowInvocationId."""
        key = payload.pop("flowInvocationId", f"inv-{next(_keys)}")
        body = orjson.dumps({"targetUserIds": users, "flowInvocationId": key, **payload})
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://flowhook.test"
        ) as sender:
            response = await sender.post(
                f"/hooks/{trigger['hookId']}", content=body, headers={"content-type": "application/json"}
            )
        assert response.status_code == 202, response.text
        return key

    async def settle(self) -> None:
        """Run executor batches until nothing is due now."""
        assert self.services.executor is not None
        await self.services.executor.drain()

    async def cards(self, user_id: str, **params: Any) -> list[dict[str, Any]]:
        page = await self.ok("GET", f"/v1/default/users/{user_id}/cards", params=params)
        return page["data"]  # type: ignore[no-any-return]

    async def events(self, **params: Any) -> list[dict[str, Any]]:
        page = await self.ok("GET", "/v1/default/analytics/events", params={"limit": 1000, **params})
        return page["data"]  # type: ignore[no-any-return]

    async def invocation(self, flow: dict[str, Any], key: str) -> dict[str, Any]:
        return await self.ok("GET", f"/v1/default/action-flows/{flow['id']}/invocations/{key}")  # type: ignore[no-any-return]

    async def eventually(self, check: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
        """Poll `check` until it returns something truthy (timers firing); fail after `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await check()
            if found:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)

    async def act(self, card: dict[str, Any], action: str, status: int = 200) -> Any:
        return await self.ok(
            "POST", f"/v1/default/cards/{card['cardInstanceId']}/actions", status, json={"action": action}
        )


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("flows"),
        admin_token=ADMIN_TOKEN,
        sandbox_workers=1,
        durability="os",
        executor_poll_seconds=0.02,
        executor_retry_seconds=0.05,
        executor_max_attempts=3,
    )


@pytest.fixture(scope="module")
def flowhook(app: Starlette, api: httpx.AsyncClient) -> Flowhook:
    return Flowhook(app, api)


@pytest.fixture
def card_wait_steps() -> Callable[..., list[dict[str, Any]]]:
    """`card_wait_flow`, for tests that build flows in the store rather than through the app."""
    return card_wait_flow
