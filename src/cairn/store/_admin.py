"""The ``Admin`` role of the SQL store: the store itself (its schema, its
connections, whether it is still there) and the workers that serve it."""

from __future__ import annotations

from collections.abc import Mapping

from ._dialect import Tx
from ._sqlbase import WORKER_STALE_MS, SqlBase, worker_is_dead


class AdminOps(SqlBase):
    """The store and its workers."""

    @property
    def schema_before(self) -> int:
        """The schema version the store had when opened (0: opening created it)."""
        return self._dialect.schema_before

    def close(self) -> None:
        """Release connections."""
        self._dialect.close()

    def check(self) -> None:
        """Raise StoreError if the store is unusable (StoreReplaced if it is gone)."""
        self._dialect.check()

    def change_token(self) -> int:
        """A number that changes when another connection commits (cheap to poll)."""
        return self._dialect.change_token()

    def heartbeat(self, worker_id: str, host: str, pid: int, now_ms: float) -> None:
        """Record that a worker is alive (no wake-up: nobody waits for this)."""
        params = {"id": worker_id, "host": host, "pid": pid, "now_ms": now_ms}
        self._dialect.write_all([("heartbeat", params)], notify=False)

    def serve_functions(self, worker_id: str, versions: Mapping[str, str]) -> None:
        """Record the functions a serving worker has loaded, with their code
        versions (replacing what it served before)."""
        served = [
            {"worker_id": worker_id, "function": name, "code_version": version}
            for name, version in versions.items()
        ]
        self._dialect.write_all(
            [("forget_functions", {"worker_id": worker_id}), ("serve_function", served)]
        )

    def serving_workers(self, function: str, now_ms: float) -> dict[str, str]:
        """Live serving workers that have loaded ``function``: id -> code version."""
        rows = self._all(
            "serving_workers",
            {"function": function, "fresh_after_ms": now_ms - WORKER_STALE_MS},
        )
        return {str(worker_id): str(version) for worker_id, version in rows}

    def unserved_functions(self, request_id: str, now_ms: float) -> list[str]:
        """Functions of pending calls no live serving worker has loaded."""
        rows = self._all(
            "unserved_functions",
            {"request_id": request_id, "fresh_after_ms": now_ms - WORKER_STALE_MS},
        )
        return [str(row[0]) for row in rows]

    def release_dead_workers(self, now_ms: float) -> int:
        """Hand back the calls of workers that stopped heartbeating (or whose process
        on this host is gone); return how many calls became runnable again."""
        holders = self._all("workers_holding_work", {})
        suspects = [
            worker_id
            for worker_id, host, pid, beat in holders
            if worker_is_dead(host, pid, beat, now_ms)
        ]
        if not suspects:
            return 0

        def body(tx: Tx) -> int:
            # Look again under the workers' row locks: one may have come back.
            rows = tx.execute("lock_workers", {"ids": suspects}).fetchall()
            released = 0
            for worker_id, host, pid, beat in rows:
                if not worker_is_dead(host, pid, beat, now_ms):
                    continue
                released += len(
                    tx.execute(
                        "release_calls", {"worker_id": worker_id, "executor": None}
                    ).fetchall()
                )
                tx.execute("free_owned_requests", {"dead": [worker_id]})
                tx.execute("forget_functions", {"worker_id": worker_id})
                tx.execute("delete_worker", {"worker_id": worker_id})
            return released

        return self._dialect.write(body)
