"""A ``cairn serve`` of ``tests/dashboard/apps.py`` for the dashboard tests.

``dash`` is one server (auth off) for the whole package; ``dash_secured`` one
with an API key. ``big_map`` starts a 10,000-item map on ``dash`` with the first
test that takes ``http``, so that it has finished by the time its own test looks.
``browser`` is one headless Chromium per test module; ``page`` a fresh page in it
(a desktop window), ``phone`` one of a phone's size and touch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.dashboard.browser import CHROMIUM_ARGS, WAIT_MS, chromium
from tests.dashboard.support import APPS, BIG_MAP, KEY
from tests.server.support import Server, invoke, launch


@pytest.fixture(scope="package")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The dashboard tests' server (auth off)."""
    started = launch(tmp_path_factory.mktemp("dash"), apps=APPS)
    yield started
    started.stop()


@pytest.fixture(scope="package")
def dash_secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of the same apps that needs ``KEY``."""
    started = launch(tmp_path_factory.mktemp("dash_key"), apps=APPS, api_key=KEY)
    yield started
    started.stop()


@pytest.fixture(scope="package")
def big_map(dash: Server) -> str:
    """The id of a request mapping over 10,000 items (maybe still running)."""
    with dash.client() as client:
        return invoke(client, "dash_fanout", BIG_MAP)


@pytest.fixture
def http(dash: Server, big_map: str) -> Iterator[httpx.Client]:
    """An httpx client on the dashboard tests' server."""
    with dash.client() as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module's tests."""
    path = chromium()
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _page(browser: Browser, **options: object) -> Iterator[Page]:
    context = browser.new_context(**options)  # type: ignore[arg-type]
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    expect.set_options(timeout=WAIT_MS)
    yield opened
    context.close()
    assert not errors, errors


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page; fails the test on any script error."""
    yield from _page(browser, viewport={"width": 1360, "height": 900})


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A page of a phone's size (390 x 844, touch), as ``page``."""
    yield from _page(
        browser,
        viewport={"width": 390, "height": 844},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
    )


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: the test's directory, or ``$CAIRN_SCREENSHOTS``."""
    target = os.environ.get("CAIRN_SCREENSHOTS")
    if not target:
        return tmp_path
    folder = Path(__file__).parents[2] / target  # relative to the checkout
    folder.mkdir(parents=True, exist_ok=True)
    return folder
