"""A ``cairn serve`` of ``tests/dashboard/apps.py`` for the dashboard tests.

``dash`` is one server (auth off) for the whole package; ``dash_secured`` one
with an API key. ``big_map`` starts a 10,000-item map on ``dash`` with the first
test that takes ``http``, so that it has finished by the time its own test looks.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

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
