"""Count Cairn's round trips to PostgreSQL per request and per call (section 12
of ``make bench``).

A TCP proxy in front of the server counts, on every connection, the times the
client speaks again after the server answered: one round trip each (a pipeline's
statements sent together count once). Every process of the run connects through
it, the executors included, so the count is the request's whole cost in round
trips, with what idle executors ask meanwhile.

    .venv/bin/python bench/roundtrips.py [--pg-url URL] [--requests N] [--json]

Prints round trips per 3-call request, and per call (from requests of 1 and of
101 sequential calls). ``make bench`` runs it in a process of its own
(``measure_all``), so that its engine is not the benchmark worker's.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_apps
import psycopg
from sys_cairn import release_engine

import cairn


class CountingLink:
    """Forwards 127.0.0.1:<port> to PostgreSQL, counting the client's turns."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self.turns = 0
        self.traced: dict[str, int] | None = None
        self.timeline: list[tuple[float, int, str]] = []
        self._links = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            server = socket.create_connection(self._target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._links += 1
            state: dict[str, Any] = {"answered": True, "names": {}, "id": self._links}
            threading.Thread(
                target=self._pipe, args=(client, server, state, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pipe, args=(server, client, state, False), daemon=True
            ).start()

    def _pipe(
        self,
        source: socket.socket,
        sink: socket.socket,
        state: dict[str, Any],
        from_client: bool,
    ) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    turn = from_client and state["answered"]
                    if turn:
                        self.turns += 1
                    if from_client:
                        what = _statements(data, state["names"])
                        if turn and self.traced is not None:
                            self.traced[what] = self.traced.get(what, 0) + 1
                            self.timeline.append(
                                (time.perf_counter(), state["id"], what)
                            )
                    state["answered"] = not from_client
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def trace(self) -> dict[str, int]:
        """Count each turn by the statements it sends, from now on."""
        with self._lock:
            self.traced = {}
            return self.traced

    def take(self) -> int:
        with self._lock:
            turns, self.turns = self.turns, 0
        return turns


def _statements(data: bytes, names: dict[bytes, str]) -> str:
    """The statements of a burst of client messages, each by its first words
    (prepared statements by the text they were prepared with)."""
    found = []
    at = 0
    while at + 5 <= len(data):
        kind = data[at : at + 1]
        length = int.from_bytes(data[at + 1 : at + 5], "big")
        body = data[at + 5 : at + 1 + length]
        at += 1 + length
        if kind == b"Q":
            found.append(_words(body.split(b"\0")[0]))
        elif kind == b"P":
            name, query = body.split(b"\0")[:2]
            names[name] = _words(query)
            if not name:
                found.append(names[name])
        elif kind == b"B":
            _portal, statement = body.split(b"\0")[:2]
            if statement:
                found.append(names.get(statement, "?"))
    return " | ".join(found) or "(no statement)"


def _words(query: bytes) -> str:
    text = " ".join(
        line.split("--")[0] for line in query.decode(errors="replace").splitlines()
    )
    return " ".join(text.split()[:6])


def measure(
    pg_url: str, requests: int, trace_calls: int | None = None
) -> dict[str, Any]:
    """Round trips of warm requests on a new database behind a counting link
    (and, with ``trace_calls``, the turns of one request of that many calls)."""
    parts = urllib.parse.urlsplit(pg_url)
    name = f"cairn_roundtrips_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        link = CountingLink(parts.hostname or "127.0.0.1", parts.port or 5432)
        user = f"{parts.username}@" if parts.username else ""
        url = f"postgresql://{user}127.0.0.1:{link.port}/{name}?sslmode=disable"

        def run(calls: int) -> None:
            request = cairn.run_local_application(
                bench_apps.bench_sequential, calls, cairn_store=url
            )
            request.output()

        run(1)  # warm: the engine, its executors and their connections
        link.take()
        for _ in range(requests):
            run(3)
        three = link.take() / requests
        for _ in range(requests):
            run(1)
        one = link.take() / requests
        for _ in range(requests):
            run(101)
        many = link.take() / requests
        found: dict[str, Any] = {
            "per_3_call_request": three,
            "per_1_call_request": one,
            "per_call": (many - one) / 100,
            "requests": requests,
        }
        if trace_calls is not None:
            traced = link.trace()
            run(trace_calls)
            found["traced"] = dict(sorted(traced.items(), key=lambda kv: -kv[1]))
            start = link.timeline[0][0] if link.timeline else 0.0
            found["timeline"] = [
                ((at - start) * 1000, link_id, what)
                for at, link_id, what in link.timeline
            ]
        release_engine()
        return found
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def measure_all(pg_url: str, rounds: int, requests: int) -> dict[str, Any]:
    """``rounds`` measurements, each in a new process."""
    runs = []
    for _ in range(rounds):
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                "--pg-url",
                pg_url,
                "--requests",
                str(requests),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"round trips: {json.dumps(figures)}", file=sys.stderr)
        runs.append(figures)
    return {"runs": runs}


def section(doc: dict[str, Any], number: int) -> list[str]:
    """The markdown of the benchmark page's section on round trips."""
    runs = doc.get("roundtrips", {}).get("runs", [])
    out = [
        f"### {number}. Round trips to PostgreSQL",
        "",
        "Cairn alone (`bench/roundtrips.py`): every process of a warm "
        "`run_local_application` (the caller, the engine and its executors) talks "
        "to PostgreSQL through a proxy that counts the client's turns: a burst of "
        "statements sent together is one round trip. What idle executors ask "
        "meanwhile counts too. Per call: from requests of 101 and of 1 sequential "
        "calls. Median of the runs.",
        "",
    ]
    if not runs:
        return [*out, "Not run (no PostgreSQL, or left out of the plan).", ""]

    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    out += [
        "| round trips | per 3-call request | per 1-call request | per call | runs |",
        "|---|---|---|---|---|",
        f"| Cairn | {median('per_3_call_request'):.1f} "
        f"| {median('per_1_call_request'):.1f} | {median('per_call'):.2f} "
        f"| {len(runs)} |",
        "",
    ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also list the turns of one request",
    )
    parser.add_argument(
        "--trace-calls", type=int, default=3, help="calls of the traced request"
    )
    args = parser.parse_args()
    found = measure(
        args.pg_url, args.requests, args.trace_calls if args.trace else None
    )
    if args.json:
        print(json.dumps(found))
        return 0
    print(f"round trips per 3-call request: {found['per_3_call_request']:.1f}")
    print(f"round trips per 1-call request: {found['per_1_call_request']:.1f}")
    print(f"round trips per call: {found['per_call']:.2f}")
    for what, count in found.get("traced", {}).items():
        print(f"{count:4d}  {what}")
    if "timeline" in found:
        print("in order (connection, statements):")
        for at_ms, link_id, what in found["timeline"]:
            print(f"  {at_ms:7.2f} ms  {link_id:3d}  {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
