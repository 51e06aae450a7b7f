"""Shared fixtures: every test gets its own SQLite store file and working directory.

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
from cairn.store import Store, open_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh SQLite store in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'cairn.db'}"


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
