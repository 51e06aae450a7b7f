"""Count Cairn's round trips to PostgreSQL per request and per call.

A TCP proxy in front of the server counts, on every connection, the times the
client speaks again after the server answered: one round trip each (a pipeline's
statements sent together count once). Every process of the run connects through
it, the executors included, so the count is the request's whole cost in round
trips, with what idle executors ask meanwhile.

    .venv/bin/python bench/roundtrips.py [--pg-url URL] [--requests N]

Prints round trips per 3-call request, and per call (from requests of 1 and of
101 sequential calls).
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import urllib.parse
import uuid
from pathlib import Path

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
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            server = socket.create_connection(self._target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = {"answered": True}
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
        state: dict[str, bool],
        from_client: bool,
    ) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if from_client and state["answered"]:
                        self.turns += 1
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

    def take(self) -> int:
        with self._lock:
            turns, self.turns = self.turns, 0
        return turns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    parts = urllib.parse.urlsplit(args.pg_url)
    name = f"cairn_roundtrips_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg_url, autocommit=True) as admin:
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
        for _ in range(args.requests):
            run(3)
        three = link.take() / args.requests
        for _ in range(args.requests):
            run(1)
        one = link.take() / args.requests
        for _ in range(args.requests):
            run(101)
        many = link.take() / args.requests
        print(f"round trips per 3-call request: {three:.1f}")
        print(f"round trips per 1-call request: {one:.1f}")
        print(f"round trips per call: {(many - one) / 100:.2f}")
        release_engine()
    finally:
        with psycopg.connect(args.pg_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
