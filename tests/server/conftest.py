"""Real ``cairn serve`` processes on free loopback ports.

``server`` is one server for the whole session (no auth); tests that need their
own (auth on, fuzzing) start one with ``start_server``. Every server serves
``tests/server/apps.py`` on a fresh SQLite store and is stopped (SIGTERM, then
SIGKILL) at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.support import Server, launch


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server (auth off) shared by the session's tests."""
    started = launch(tmp_path_factory.mktemp("server"))
    yield started
    started.stop()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``start_server(api_key=..., ...)``: a server of the test's own, stopped after."""
    started: list[Server] = []

    def start(**kwargs: Any) -> Server:
        made = launch(tmp_path / f"server{len(started)}", **kwargs)
        started.append(made)
        return made

    yield start
    for made in started:
        made.stop()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """An httpx client on the shared server."""
    with server.client() as client:
        yield client
