"""The editor's browser tests: one `flowhook serve` and one Chromium per test module, a fresh page per test.

Without Debian's Chromium the browser tests skip (`.ci/run` installs it)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Error, Page, sync_playwright
from tests.conftest import free_port
from tests.support.editor import CHROMIUM, TOKEN, Flowhook

from ingress.settings import Settings

Server = tuple[Any, str]


@pytest.fixture(scope="module")
def flowhook(
    tmp_path_factory: pytest.TempPathFactory, running_server: Callable[[Settings], AbstractContextManager[Server]]
) -> Iterator[Flowhook]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("editor"), admin_token=TOKEN, sandbox_workers=1)
    with running_server(settings) as (_, url):
        headers = {"authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=f"{url}/v1/default", headers=headers) as api:
            yield Flowhook(url, api)


class Chromium:
    """One Chromium for a module's tests, launched again if it went away: a crash of the browser (seen once
    under load, closing a context whose page had dismissed a `beforeunload`) fails the test it happened in,
    not every test after it."""

    def __init__(self) -> None:
        self._playwright = sync_playwright().start()
        self._browser: Browser | None = None

    def connected(self) -> Browser:
        if self._browser is None or not self._browser.is_connected():
            self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM)
        return self._browser

    def close(self) -> None:
        if self._browser is not None and self._browser.is_connected():
            self._browser.close()
        self._playwright.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    launcher = Chromium()
    yield launcher
    launcher.close()


@pytest.fixture
def browser(chromium: Chromium) -> Browser:
    return chromium.connected()


@pytest.fixture
def accept_confirm() -> bool:
    """Whether the page accepts a `confirm()`; a module whose flows ask first overrides this."""
    return False


@pytest.fixture
def dialogs() -> list[str]:
    """The type of every dialog the page opened (alert, confirm, beforeunload)."""
    return []


@pytest.fixture
def page(browser: Browser, dialogs: list[str], accept_confirm: bool) -> Iterator[Page]:
    """A fresh context's page; every dialog is dismissed (a confirm accepted if `accept_confirm`), and the test
    fails if the editor's script throws."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(10_000)

    def answer(dialog: Any) -> None:
        dialogs.append(dialog.type)
        if dialog.type == "confirm" and accept_confirm:
            dialog.accept()
        else:
            dialog.dismiss()

    opened.on("dialog", answer)
    errors: list[Error] = []
    opened.on("pageerror", lambda error: errors.append(error))
    yield opened
    context.close()
    assert errors == [], "the page's script threw"


@dataclass
class Rotating:
    """A `flowhook serve` that can be restarted with another admin token, at the same address (so the same
    origin to a page already open)."""

    start: Callable[[str], AbstractContextManager[Any]]
    stack: ExitStack
    url: str

    def restart(self, token: str) -> None:
        self.stack.close()
        self.stack.enter_context(self.start(token))

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/v1/default", headers={"authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def rotating(
    tmp_path_factory: pytest.TempPathFactory, running_server: Callable[..., AbstractContextManager[Any]]
) -> Iterator[Rotating]:
    data_dir = tmp_path_factory.mktemp("rotating")
    port = free_port()

    def start(token: str) -> AbstractContextManager[Any]:
        return running_server(Settings(data_dir=data_dir, admin_token=token, sandbox_workers=1), port=port)

    with ExitStack() as stack:
        stack.enter_context(start(TOKEN))
        yield Rotating(start, stack, f"http://127.0.0.1:{port}")
