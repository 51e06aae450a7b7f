"""The worker-scaling workload: one ``map`` shared by N ``cairn worker`` processes.

Run inside the benchmark's Cairn worker (``worker.py`` through ``sys_cairn.py``),
which only submits and watches: it starts no engine of its own. On a fresh store:

1. open (and so migrate) the store, then start N ``cairn worker bench_apps
   --concurrency 1`` processes on it: the project's ``cairn`` beside this
   interpreter, ``bench/`` on ``PYTHONPATH``, ``BENCH_WORKER=k`` in each one's
   environment for its items to report;
2. wait until each has written its heartbeat row (a worker does so as it starts
   its executors), then run an untimed warm-up ``map`` that all of them poll for;
3. time from ``submit(bench_map_by_worker, n)`` to the request's finished status,
   read from the store every few milliseconds;
4. check that every item succeeded, and stop the workers with SIGTERM (untimed).

How many items each worker ran comes from the items' outputs: a committed call
keeps no worker id in the store (it is cleared with the checkpoint's commit).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_apps

from cairn import _request
from cairn.store import RequestRecord, Store, open_store
from cairn.types import CallStatus, RequestStatus

BENCH = Path(__file__).resolve().parent
CAIRN = Path(sys.executable).parent / "cairn"
_POLL_S = 0.005
_UP_TIMEOUT_S = 60.0
_WARM_ITEMS_PER_WORKER = 200
# The heartbeat rows are not in the store's interface: read with the driver.
_BEATING = "SELECT pid FROM workers WHERE heartbeat_at_ms > 0"


def heartbeat_pids(backend: str, location: str) -> set[int]:
    """Pids of the workers whose heartbeat row says they are up."""
    if backend == "sqlite":
        conn = sqlite3.connect(location)
        try:
            return {int(row[0]) for row in conn.execute(_BEATING)}
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(location) as pg:
        return {int(row[0]) for row in pg.execute(_BEATING)}


class WorkerPool:
    """``count`` ``cairn worker`` processes on one store.

    They stay in this process's group, so that the harness, killing the group
    after a timeout, kills them too (and their executors die with them).
    """

    def __init__(self, url: str, count: int, log_dir: str) -> None:
        self.url = url
        self.count = count
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[str] = []

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("CAIRN_CONCURRENCY", None)  # --concurrency below says it
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(BENCH), env.get("PYTHONPATH")) if p
        )
        tag = uuid.uuid4().hex[:8]
        argv = [str(CAIRN), "worker", "bench_apps", "--store", self.url]
        argv += ["--concurrency", "1", "--grace", "5"]
        for k in range(1, self.count + 1):
            log_path = os.path.join(self.log_dir, f"cairn-worker-{tag}-{k}.stderr.log")
            self.logs.append(log_path)
            with open(log_path, "w") as log:
                self.procs.append(
                    subprocess.Popen(
                        argv,
                        env={**env, "BENCH_WORKER": str(k)},
                        stdout=log,
                        stderr=log,
                    )
                )

    def wait_up(self, beating: Callable[[], set[int]]) -> None:
        """Until every worker has a heartbeat row; fail if one exits first."""
        pids = {proc.pid for proc in self.procs}
        deadline = time.monotonic() + _UP_TIMEOUT_S
        while not pids <= beating():
            for k, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"cairn worker {k + 1} exited with {proc.returncode}: "
                        + Path(self.logs[k]).read_text(errors="replace")[-800:]
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not up after {_UP_TIMEOUT_S:g}s")
            time.sleep(0.02)

    def stop(self) -> list[int | None]:
        """SIGTERM to each (a clean drain), SIGKILL to any still there after 30 s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=30))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                codes.append(None)
        return codes


def _finished(store: Store, request_id: str, timeout_s: float) -> RequestRecord:
    deadline = time.monotonic() + timeout_s
    while True:
        record = store.get_request(request_id)
        if record is not None and record.status.finished:
            return record
        if time.monotonic() > deadline:
            raise RuntimeError(f"request {request_id} not finished in {timeout_s:g}s")
        time.sleep(_POLL_S)


def _per_worker(record: RequestRecord, n: int, count: int) -> dict[str, int]:
    if record.status is not RequestStatus.SUCCEEDED:
        raise RuntimeError(f"map of {n} items: {record.status} ({record.error})")
    ran: dict[str, int] = json.loads(record.output or b"{}")
    per_worker = {str(k): ran.pop(str(k), 0) for k in range(1, count + 1)}
    if ran or sum(per_worker.values()) != n:
        raise RuntimeError(f"map of {n} items on {count} workers: {per_worker} {ran}")
    return per_worker


def run(url: str, backend: str, location: str, n: int, count: int, log_dir: str) -> Any:
    """One timed ``map`` of ``n`` items on ``count`` fresh workers; the figures."""
    app = bench_apps.bench_map_by_worker
    store = open_store(url)  # migrated here, not by workers racing to do it
    pool = WorkerPool(url, count, log_dir)
    try:
        started = time.perf_counter()
        pool.start()
        pool.wait_up(lambda: heartbeat_pids(backend, location))
        up_s = time.perf_counter() - started
        warm_n = _WARM_ITEMS_PER_WORKER * count
        warm_id = _request.submit(app, (warm_n,), {}, store_url=url)
        warm = _per_worker(_finished(store, warm_id, 120), warm_n, count)
        began = time.perf_counter()
        request_id = _request.submit(app, (n,), {}, store_url=url)
        submitted = time.perf_counter()
        record = _finished(store, request_id, 60 + 0.05 * n)
        elapsed = time.perf_counter() - began
        per_worker = _per_worker(record, n, count)
        items = [c for c in store.list_calls(request_id) if c.kind == "map_item"]
        done = sum(c.status is CallStatus.SUCCEEDED for c in items)
        if done != n:
            raise RuntimeError(f"map of {n} items: {done} items succeeded")
    finally:
        codes = pool.stop()
        store.close()
    return {
        "elapsed_s": elapsed,
        "submit_s": submitted - began,
        "store_s": ((record.finished_at_ms or 0) - record.created_at_ms) / 1000,
        "per_worker": per_worker,
        "warm_per_worker": warm,
        "workers_up_s": up_s,
        "items_recorded": done,
        "items_with_worker_id": sum(c.worker_id is not None for c in items),
        "exit_codes": codes,
    }
