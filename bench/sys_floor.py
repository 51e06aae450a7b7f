"""The floor (``floor.py``) under the benchmark's worker.

A "request" of n calls is n calls of the durable no-op on an open connection; the
connection is opened (file or database created) before the timings, as the
engines' warm-ups do. ``map`` is the same loop (the floor has no parallelism:
it shows what n durable items cost on one connection); ``replay`` reads the n
checkpoints back by id and unpickles them.
"""

from __future__ import annotations

import platform
from typing import Any

from floor import FloorStore, PgFloorStore
from plain import plain_noop


class FloorSystem:
    name = "floor"

    def __init__(self) -> None:
        self.store: FloorStore | PgFloorStore | None = None
        self.last_id: str | None = None
        self.effective: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        return {"python": platform.python_version()}

    def open(self, setting: dict[str, Any], store: str, queues: bool = False) -> None:
        del queues
        if setting["backend"] == "sqlite":
            self.store = FloorStore(store, setting["synchronous"])
            self.effective = {
                "journal_mode": "wal",
                "synchronous": setting["synchronous"],
            }
        else:
            self.store = PgFloorStore(store)
            row = self.store.conn.execute("SHOW synchronous_commit").fetchone()
            self.store.conn.commit()
            self.effective = {"synchronous_commit": row[0] if row else "?"}
        self.noop = self.store.durable(plain_noop)
        self._next_id = self.store.last_id() + 1

    def warm(self) -> None:
        self.request(1)

    def request(self, n: int) -> Any:
        noop = self.noop
        total = 0
        for i in range(n):
            total += noop(i)
        self.last_id = f"{self._next_id}:{n}"
        self._next_id += n
        return total

    def map(self, n: int) -> Any:
        return self.request(n)

    def before_replay(self) -> None:
        pass

    def replay(self, request_id: str, n: int) -> Any:
        assert self.store is not None
        first, count = (int(part) for part in request_id.split(":"))
        return sum(self.store.replay(first, count))

    def verify_replay(self, n: int) -> dict[str, Any]:
        return {"served_from_checkpoint": n, "ran_again": 0}

    def verify_map(self, n: int) -> dict[str, Any]:
        return {"items_recorded": n}

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
