"""PostgreSQL connections a Cairn process holds, and how soon an idle worker claims.

    .venv/bin/python bench/connections.py [--pg-url URL] [--requests N]

Each figure on a fresh database, counted in ``pg_stat_activity``:

- ``cairn run`` at ``CAIRN_CONCURRENCY`` 1 and 4: the most sessions seen while its
  call runs (executors, the supervisor's stores, the live display, LISTEN);
- an idle ``cairn worker --concurrency 4``, after it ran one request;
- the ms from a request's commit (made by this process) to the claim of its call
  by that idle worker (its ``started_at_ms``, same machine and clock), over
  ``--requests`` requests with idle gaps. The peer, in the same run: one claim
  made at once by this process on the same database (the floor of a claim).

Prints one line per figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from cairn import _request_ops
from cairn.store import ClaimScope, Store, open_store

CAIRN = str(Path(sys.executable).parent / "cairn")
APP = """
import time
from cairn import application, function

@function()
def conn_bench_step(seconds: float) -> float:
    time.sleep(seconds)
    return seconds

@application()
@function()
def conn_bench(seconds: float) -> float:
    return conn_bench_step(seconds)
"""


def sessions(admin: psycopg.Connection, name: str) -> int:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
    ).fetchone()
    return int(row[0]) if row else 0


def fresh(admin: psycopg.Connection, base: str) -> tuple[str, str]:
    name = f"cairn_conns_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return name, base.rsplit("/", 1)[0] + f"/{name}"


def run_peak(admin: psycopg.Connection, base: str, app: Path, concurrency: int) -> int:
    name, url = fresh(admin, base)
    try:
        env = {**os.environ, "CAIRN_CONCURRENCY": str(concurrency)}
        command = [CAIRN, "run", str(app), "--input", "2", "--store", url]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        peak = 0
        while process.poll() is None:
            peak = max(peak, sessions(admin, name))
            time.sleep(0.02)
        assert process.returncode == 0, "cairn run failed"
        return peak
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def submit(store: Store) -> tuple[str, float]:
    """A request any worker may run: its id and the wall-clock ms before its commit."""
    submission = _request_ops.new_request("conn_bench", (0.0,), {})
    committed_ms = time.time() * 1000
    return _request_ops.create(store, submission), committed_ms


def worker_figures(
    admin: psycopg.Connection, base: str, app: Path, requests: int
) -> tuple[int, list[float], list[float]]:
    name, url = fresh(admin, base)
    open_store(url).close()
    command = [CAIRN, "worker", str(app), "--store", url, "--concurrency", "4"]
    worker = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    store = open_store(url)
    try:
        claims: list[float] = []
        for _ in range(requests):
            request_id, committed_ms = submit(store)
            while True:
                record = store.get_request(request_id)
                if record is not None and record.status.finished:
                    break
                time.sleep(0.005)
            (call,) = [c for c in store.list_calls(request_id) if c.parent_id is None]
            claims.append((call.started_at_ms or 0.0) - committed_ms)
            time.sleep(random.uniform(0.2, 0.5))  # executors idle again
        time.sleep(2.5)
        idle = sessions(admin, name) - 1  # less this process's store
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        floor: list[float] = []
        scope = ClaimScope(owner=None, functions=("conn_bench",))
        for _ in range(requests):
            _, committed_ms = submit(store)
            if store.claim_call("bench", 0, time.time() * 1000, scope=scope):
                floor.append(time.time() * 1000 - committed_ms)
        return idle, claims, floor
    finally:
        store.close()
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        psycopg.connect(args.pg_url, autocommit=True) as admin,
    ):
        app = Path(folder) / "conn_bench_app.py"
        app.write_text(APP)
        spec = importlib.util.spec_from_file_location("conn_bench_app", app)
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        for concurrency in (1, 4):
            peak = run_peak(admin, args.pg_url, app, concurrency)
            print(f"cairn run, CAIRN_CONCURRENCY={concurrency}: {peak} connections")
        idle, claims, floor = worker_figures(admin, args.pg_url, app, args.requests)
        print(f"idle cairn worker --concurrency 4: {idle} connections")
        ratio = statistics.median(claims) / statistics.median(floor)
        print(
            f"idle worker claims a new request after: median "
            f"{statistics.median(claims):.2f} ms, p90 "
            f"{sorted(claims)[int(len(claims) * 0.9)]:.2f} ms; a claim at once "
            f"(peer): {statistics.median(floor):.2f} ms; ratio {ratio:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
