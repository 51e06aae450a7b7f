"""Cairn under the benchmark's worker (runs in the project's ``.venv``).

Every run gets a fresh store: a new SQLite file (``?synchronous=`` from the
setting, WAL as always) or a new PostgreSQL database. Requests go through the
public API: ``run_local_application(app, n, cairn_store=url).output()``, and
``get_request(id, store=url).replay()`` for a replay.

Cairn keeps the process's latest local engine (its executor processes) alive for
the next run on the same store. Within one run that is what a real program gets,
so a run's timed requests find it started by the warm-up; between runs, which use
new stores, ``close`` stops it outside any timing (the next run would otherwise
stop it inside its own, and idle executors would poll while the peers run).
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import bench_apps

import cairn


def release_engine() -> None:
    """Stop the executors a finished local run left warm (outside any timing)."""
    from cairn import worker

    worker.close_local_engine()


def _pg_synchronous_commit(url: str) -> str:
    """What a session on that database gets (Cairn's store sets nothing itself)."""
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW synchronous_commit").fetchone()
    return str(row[0]) if row else "?"


class CairnSystem:
    name = "cairn"

    def __init__(self) -> None:
        self.url = ""
        self.location, self.backend = "", ""
        self.last_id: str | None = None
        self._replayed: Any = None
        self.effective: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        return {"cairn": version("cairn")}

    def open(self, setting: dict[str, Any], store: str, queues: bool = False) -> None:
        del queues
        self.location, self.backend = store, setting["backend"]
        if setting["backend"] == "sqlite":
            self.url = f"sqlite:///{store}?synchronous={setting['synchronous']}"
            self.effective = {
                "journal_mode": "wal",
                "synchronous": setting["synchronous"],
            }
        else:
            self.url = store
            self.effective = {"synchronous_commit": _pg_synchronous_commit(store)}

    def warm(self) -> None:
        self.request(1)

    def request(self, n: int) -> Any:
        request = cairn.run_local_application(
            bench_apps.bench_sequential, n, cairn_store=self.url
        )
        output = request.output()
        self.last_id = request.id
        return output

    def map(self, n: int) -> Any:
        request = cairn.run_local_application(
            bench_apps.bench_map, n, cairn_store=self.url
        )
        output = request.output()
        self.last_id = request.id
        return output

    def before_replay(self) -> None:
        pass

    def replay(self, request_id: str, n: int) -> Any:
        request = cairn.get_request(request_id, store=self.url)
        request.replay()
        self._replayed = request
        return request.output()

    def verify_replay(self, n: int) -> dict[str, Any]:
        calls = [c for c in self._replayed.calls() if c.kind == "call"]
        served = sum(c.served_from_checkpoint for c in calls)
        ran = sum(c.ran_in_latest_run for c in calls)
        if served != n or ran:
            raise RuntimeError(f"replay of {n} calls: {served} served, {ran} ran again")
        return {"served_from_checkpoint": served, "ran_again": ran}

    def verify_map(self, n: int) -> dict[str, Any]:
        request = cairn.get_request(self.last_id or "", store=self.url)
        items = [c for c in request.calls() if c.kind == "map_item"]
        done = [c for c in items if c.status == "succeeded"]
        if len(done) != n:
            raise RuntimeError(f"map of {n} items: {len(done)} items succeeded")
        return {"items_recorded": len(done)}

    def over_workers(self, n: int, workers: int, log_dir: str) -> dict[str, Any]:
        """A ``map`` of ``n`` items run by ``workers`` ``cairn worker`` processes
        (``scaling.py``); this process only submits it and watches the store."""
        import scaling

        result: dict[str, Any] = scaling.run(
            self.url, self.backend, self.location, n, workers, log_dir
        )
        return result

    def close(self) -> None:
        release_engine()
