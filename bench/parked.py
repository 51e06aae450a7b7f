"""Parked requests: what 10,000 requests waiting for a signal cost a worker, and
how soon one resumes after its signal.

``python bench/parked.py --store sqlite`` (or ``--store postgresql://…``;
``--requests N``, default 10,000). It creates N requests of ``bench_await_signal``
(each waits for the signal ``go``) on a fresh store, starts ``cairn worker
bench_apps`` with two executors, and waits until every request is parked. Then:

- the worker's processes (supervisor and executors) and their resident memory;
- the CPU the worker's processes use over ``--idle-s`` seconds while all wait;
- the resume latency of ``--samples`` requests: from the signal's commit to the
  commit that finishes the request (the worker stamps it; same machine, same
  clock). The request has no completed call to replay besides its own start.
  The peer, in the same run on the same worker: a fresh ``bench_echo`` request,
  from its creation to its end.

Prints, as JSON, the figures, the medians and p90s of both latencies, and their
ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_apps
import psycopg
from invoke_load import BENCH, CAIRN, _fresh_store

from cairn import _calls, _request_ops
from cairn.store import Store, open_store

_TICKS_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += _tree(int(child))
    return found


def _cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS_S


def _rss_bytes(pids: list[int]) -> int:
    return sum(
        int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_BYTES
        for pid in pids
    )


def _idle(pid: int, idle_s: float) -> dict[str, float]:
    """The worker's processes, their memory, and the CPU they use in ``idle_s``."""
    pids = _tree(pid)
    before = _cpu_s(pids)
    time.sleep(idle_s)
    cpu_s = _cpu_s(_tree(pid)) - before
    return {
        "processes": len(pids),
        "rss_mb": round(_rss_bytes(pids) / 2**20, 1),
        "cpu_percent_of_a_core": round(100 * cpu_s / idle_s, 2),
    }


def _parked(store: Store, ids: list[str]) -> int:
    """How many of the requests have parked on their signal wait."""
    return sum(
        1
        for request_id in ids
        if any(w.call_id is not None for w in store.list_waits(request_id))
    )


def _submit(store: Store, app: Any, count: int, first: int = 0) -> list[str]:
    ids: list[str] = []
    for start in range(first, first + count, 500):
        batch = [
            _request_ops.new_request(app, (i,), {})
            for i in range(start, min(start + 500, first + count))
        ]
        store.create_requests(batch)
        ids += [request.id for request, _, _ in batch]
    return ids


def _finished_ms(store: Store, request_id: str, timeout_s: float = 60.0) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = store.get_request(request_id)
        if record is not None and record.finished_at_ms is not None:
            return record.finished_at_ms
        time.sleep(0.001)
    raise RuntimeError(f"request {request_id} did not finish")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(
    store_url: str, requests: int, samples: int, idle_s: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        url, database = _fresh_store(store_url, Path(folder))
        store = open_store(url)
        worker = None
        try:
            env = {
                **os.environ,
                "PYTHONPATH": f"{BENCH}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "CAIRN_CONCURRENCY": "2",
            }
            command = [CAIRN, "--log-level", "warning", "worker", "bench_apps"]
            with open(Path(folder) / "worker.log", "wb") as log:
                worker = subprocess.Popen(
                    [*command, "--store", url],
                    env=env,
                    cwd=folder,
                    stdout=log,
                    stderr=log,
                )
            # The peer of the idle figures: the same worker with nothing parked.
            _finished_ms(store, _submit(store, bench_apps.bench_echo, 1, -1)[0])
            time.sleep(1.0)
            empty = _idle(worker.pid, idle_s)
            started = time.monotonic()
            ids = _submit(store, bench_apps.bench_await_signal, requests)
            while _parked(store, ids[-50:]) < min(50, requests):
                time.sleep(0.5)
            while _parked(store, ids) < requests:
                time.sleep(1.0)
            park_s = time.monotonic() - started
            time.sleep(1.0)
            parked = _idle(worker.pid, idle_s)

            resume_ms = []
            for request_id in ids[:samples]:
                sent_ms = _calls.now_ms()
                _request_ops.signal(store, request_id, "go", 1)
                resume_ms.append(_finished_ms(store, request_id) - sent_ms)
                time.sleep(0.05)
            fresh_ms = []
            for position in range(samples):
                request_id = _submit(store, bench_apps.bench_echo, 1, position)[0]
                record = store.get_request(request_id)
                assert record is not None
                fresh_ms.append(_finished_ms(store, request_id) - record.created_at_ms)
                time.sleep(0.05)
        finally:
            if worker is not None:
                worker.kill()
                worker.wait()
            store.close()
            if database is not None:
                with psycopg.connect(store_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
    resume = statistics.median(resume_ms)
    fresh = statistics.median(fresh_ms)
    return {
        "store": "sqlite" if store_url == "sqlite" else "postgresql",
        "parked_requests": requests,
        "seconds_to_park_all": round(park_s, 1),
        "idle_s": idle_s,
        "worker_with_nothing_parked": empty,
        "worker_with_all_parked": parked,
        "resume_ms_median": round(resume, 1),
        "resume_ms_p90": round(_percentile(resume_ms, 0.9), 1),
        "fresh_request_ms_median": round(fresh, 1),
        "fresh_request_ms_p90": round(_percentile(fresh_ms, 0.9), 1),
        "resume_over_fresh": round(resume / fresh, 2),
    }


def measure_all(stores: list[str], requests: int) -> dict[str, Any]:
    """Every store once (``make bench``'s ``parked`` workload)."""
    runs = []
    for store in stores:
        figures = measure(store, requests, 30, 10.0)
        print(f"parked requests: {json.dumps(figures)}", file=sys.stderr)
        runs.append(figures)
    return {"runs": runs}


def section(doc: dict[str, Any], number: int) -> list[str]:
    """The markdown of the benchmark page's section on parked requests."""
    runs = doc.get("parked", {}).get("runs", [])
    out = [
        f"### {number}. Parked requests: waiting for a signal holds no process",
        "",
        "Cairn alone (`bench/parked.py`). A `cairn worker bench_apps` with two "
        "executors on a fresh store; requests that each wait for a signal are "
        "created and park. The worker's processes, memory and CPU (over 10 s) "
        "with nothing parked, the peer, and with every request parked. Resume: "
        "from a signal's commit to the commit that ends its request. The peer: a "
        "fresh request that returns at once, from its creation to its end, on "
        "the same worker in the same run.",
        "",
    ]
    if not runs:
        return [*out, "Not run.", ""]
    out += [
        "| store | parked | processes (none / all parked) | RSS MB | CPU % of a "
        "core | resume p50 ms | p90 ms | fresh request p50 ms | resume ÷ fresh |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        empty, parked = run["worker_with_nothing_parked"], run["worker_with_all_parked"]
        out.append(
            f"| {run['store']} | {run['parked_requests']:,} | "
            f"{empty['processes']} / {parked['processes']} | "
            f"{empty['rss_mb']} / {parked['rss_mb']} | "
            f"{empty['cpu_percent_of_a_core']} / {parked['cpu_percent_of_a_core']} | "
            f"{run['resume_ms_median']} | {run['resume_ms_p90']} | "
            f"{run['fresh_request_ms_median']} | {run['resume_over_fresh']} |"
        )
    return [*out, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--idle-s", type=float, default=10.0)
    args = parser.parse_args()
    print(
        json.dumps(
            measure(args.store, args.requests, args.samples, args.idle_s), indent=2
        )
    )


if __name__ == "__main__":
    sys.exit(main())
