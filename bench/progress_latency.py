"""Progress latency: how soon a ``progress.update()`` reaches an SSE client.

``python bench/progress_latency.py --store sqlite`` (or ``--store postgresql://…``).
It starts ``cairn serve bench_apps`` on a fresh store and a free loopback port,
invokes ``bench_ticker`` (20 progress updates, 100 ms apart) and follows its event
stream. An update's latency runs from the ``created_at`` the executor stamps when
``progress.update()`` runs (before its commit) to the moment the client parsed
the event: commit, change detection, read, send and parse. Same machine, same
clock. The peer, in the same run: a loop that reads the store's events directly
(another connection, every millisecond), the floor of any reader of the store.
Prints, as JSON, the median, p90 and max of both, and their ratio.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from invoke_load import _free_port, _fresh_store, _serve

from cairn.store import open_store

APPLICATION = "bench_ticker"
UPDATES = 20
INTERVAL_MS = 100
_PROGRESS = "RequestProgressUpdated"


def _epoch_s(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _poll_store(url: str, request_id: str, latencies: list[float]) -> None:
    """The peer: read the request's events straight from the store, every ms."""
    store = open_store(url)
    try:
        seq, deadline = 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            for event in store.list_events(request_id, seq):
                seq = event.seq
                if event.kind == _PROGRESS:
                    latencies.append(
                        time.time() - _epoch_s(event.payload["created_at"])
                    )
                if event.kind == "RequestFinished":
                    return
            time.sleep(0.001)
    finally:
        store.close()


def _follow_stream(base: str, request_id: str, latencies: list[float]) -> None:
    path = f"{base}/applications/{APPLICATION}/requests/{request_id}/progress"
    with (
        httpx.Client(timeout=60) as http,
        http.stream("GET", path, headers={"Last-Event-ID": "0"}) as stream,
    ):
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            received = time.time()
            update = json.loads(line[6:]).get(_PROGRESS)
            if update is not None:
                latencies.append(received - _epoch_s(update["created_at"]))


def _summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(s * 1000 for s in latencies)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "max": ordered[-1],
    }


def measure(store: str) -> dict[str, Any]:
    """Start a server on a fresh store, follow one ticking request, stop it."""
    sse: list[float] = []
    direct: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cairn-progress-") as folder:
        url, database = _fresh_store(store, Path(folder))
        port = _free_port()
        server = _serve(url, port, Path(folder), worker_nice=0)
        base = f"http://127.0.0.1:{port}"
        try:
            answer = httpx.post(
                f"{base}/applications/{APPLICATION}",
                files=[
                    ("count", ("count", str(UPDATES), "application/json")),
                    (
                        "interval_ms",
                        ("interval_ms", str(INTERVAL_MS), "application/json"),
                    ),
                ],
                timeout=30,
            )
            answer.raise_for_status()
            request_id = answer.json()["request_id"]
            peer = threading.Thread(
                target=_poll_store, args=(url, request_id, direct), daemon=True
            )
            peer.start()
            _follow_stream(base, request_id, sse)
            peer.join(60)
        finally:
            server.terminate()
            server.wait(60)
            if database is not None:
                with psycopg.connect(store, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    if len(sse) != UPDATES or len(direct) != UPDATES:
        raise RuntimeError(f"saw {len(sse)} and {len(direct)} of {UPDATES} updates")
    return {
        "store": "sqlite" if store == "sqlite" else "postgres",
        "sse_ms": _summary(sse),
        "store_read_ms": _summary(direct),
    }


def measure_all(stores: list[str], rounds: int) -> dict[str, Any]:
    """Every store, ``rounds`` times."""
    runs = []
    for _ in range(rounds):
        for store in stores:
            figures = measure(store)
            print(f"progress latency: {json.dumps(figures)}", file=sys.stderr)
            runs.append(figures)
    return {"runs": runs}


def section(doc: dict[str, Any], number: int) -> list[str]:
    """The markdown of the benchmark page's section on progress latency."""
    runs = doc.get("progress", {}).get("runs", [])
    out = [
        f"### {number}. Progress latency: an update to an SSE client",
        "",
        "Cairn alone (`bench/progress_latency.py`). `cairn serve bench_apps` on a "
        f"fresh store runs a request that reports progress {UPDATES} times, "
        f"{INTERVAL_MS} ms apart; a client follows its event stream. Latency runs "
        "from the time `progress.update()` stamped the update (before its commit) "
        "to the client having parsed the event. The peer is a loop reading the "
        "store's events directly every millisecond, in the same run: what any "
        "reader of the store could do. Median of the runs' figures.",
        "",
    ]
    if not runs:
        return [*out, "Not run.", ""]
    out += [
        "| store | SSE p50 ms | p90 ms | max ms | store read p50 ms | p90 ms "
        "| SSE ÷ store read (p50) | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store in dict.fromkeys(run["store"] for run in runs):
        mine = [r for r in runs if r["store"] == store]

        def median(kind: str, q: str, mine: list[dict[str, Any]] = mine) -> float:
            return statistics.median(r[kind][q] for r in mine)

        ratio = median("sse_ms", "median") / max(
            median("store_read_ms", "median"), 1e-9
        )
        out.append(
            f"| {store} | {median('sse_ms', 'median'):.1f} | "
            f"{median('sse_ms', 'p90'):.1f} | {median('sse_ms', 'max'):.1f} | "
            f"{median('store_read_ms', 'median'):.1f} | "
            f"{median('store_read_ms', 'p90'):.1f} | {ratio:.1f}x | {len(mine)} |"
        )
    return [*out, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--store", default="sqlite", help="sqlite, or a server URL")
    args = parser.parse_args()
    print(json.dumps(measure(args.store), indent=2))


if __name__ == "__main__":
    main()
