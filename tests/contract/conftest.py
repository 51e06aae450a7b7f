"""The contract suite runs against every store backend through ``contract_store``.

A new backend needs one branch in ``_open_backend`` and one entry in ``BACKENDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cairn.store import Store, open_store
from tests import postgres_server

BACKENDS = ["sqlite", "postgres"]


def _open_backend(
    backend: str, tmp_path: Path, cleanups: list[Callable[[], None]]
) -> Store:
    if backend == "sqlite":
        return open_store(f"sqlite:///{tmp_path / 'contract.db'}")
    if backend == "postgres":
        server = postgres_server.server()
        url = server.create_database()
        cleanups.append(lambda: server.drop_database(url))
        return open_store(url)
    raise AssertionError(f"no fixture branch for store backend {backend!r}")


@pytest.fixture(params=BACKENDS)
def contract_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty, migrated store of each backend."""
    cleanups: list[Callable[[], None]] = []
    try:
        store = _open_backend(request.param, tmp_path, cleanups)
        yield store
        store.close()
    finally:
        for cleanup in reversed(cleanups):
            cleanup()


@pytest.fixture
def reopen(contract_store: Store) -> Iterator[Callable[[], Store]]:
    """``reopen()``: another connection to the same store, closed after the test."""
    opened: list[Store] = []

    def make() -> Store:
        other = contract_store.reopen()
        opened.append(other)
        return other

    yield make
    for other in opened:
        other.close()
