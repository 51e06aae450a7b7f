"""Shared fixtures: every test gets its own working directory and its own store, a
SQLite file or a PostgreSQL database (``store_url`` runs each test on both).

Functions decorated in tests must have names unique across the whole suite (the
registry is one namespace, as in Tensorlake): define them inside the test
function (their ``__qualname__`` then includes the test's name) or prefix them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cairn
from cairn import worker
from cairn.store import Store, open_store
from tests import postgres_server

BACKENDS = ["sqlite", "postgres"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses ``store_url`` runs once per backend (``sqlite_only``
    tests exercise SQLite's file handling and run on it alone)."""
    if "store_url" in metafunc.fixturenames:
        only_sqlite = metafunc.definition.get_closest_marker("sqlite_only")
        only_postgres = metafunc.definition.get_closest_marker("postgres_only")
        backends = ["sqlite"] if only_sqlite else BACKENDS
        backends = ["postgres"] if only_postgres else backends
        metafunc.parametrize("store_url", backends, indirect=True, ids=backends)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store of each backend: a SQLite file in the test's temporary
    directory, or a new database on the test PostgreSQL server (dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cairn.db'}"
        return
    server = postgres_server.server()
    url = server.create_database(migrated=False)  # like a new file: opening migrates
    try:
        yield url
    finally:
        _close_local_engine(url)
        server.drop_database(url)


def _close_local_engine(url: str) -> None:
    """Stop the engine a run left running on ``url`` before its database goes."""
    worker.close_local_engine(url)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on ``store_url``."""
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own directory, with a small executor pool."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "CAIRN_CONCURRENCY", os.environ.get("CAIRN_TEST_CONCURRENCY", "2")
    )
    monkeypatch.delenv("CAIRN_STORE", raising=False)


@pytest.fixture
def run(store_url: str) -> Callable[..., cairn.Request]:
    """``run(app, *args, **kwargs)``: run_local_application on the test's store."""

    def run_app(app: Any, *args: Any, **kwargs: Any) -> cairn.Request:
        return cairn.run_local_application(app, *args, cairn_store=store_url, **kwargs)

    return run_app


class SideEffects:
    """Counts executions by lines user code appends to a file (not engine bookkeeping)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, line: str) -> None:
        """Called from user code, in any process."""
        with open(self.path, "a") as handle:
            handle.write(line + "\n")

    def lines(self) -> list[str]:
        """Every recorded line, in order."""
        if not self.path.exists():
            return []
        return self.path.read_text().splitlines()

    def count(self, line: str) -> int:
        """How many times ``line`` was recorded."""
        return self.lines().count(line)

    def clear(self) -> None:
        """Forget what was recorded."""
        self.path.write_text("")


@pytest.fixture
def effects(tmp_path: Path) -> SideEffects:
    """A side-effect log in the test's directory."""
    return SideEffects(tmp_path / "effects.log")
