"""A progress update reaches a connected SSE client quickly (a generous bound).

Latency is measured per update, from the ``created_at`` the executor stamps when
``progress.update()`` runs (before its commit) to the moment the client has
parsed the event: commit + change detection + read + send + parse. Same machine,
same clock.
"""

from __future__ import annotations

import datetime
import json
import statistics
import time

from tests.server.support import Server, invoke_kwargs


def _epoch_s(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_progress_reaches_the_client_within_100ms(server: Server) -> None:
    latencies: list[float] = []
    with server.client() as http:
        request_id = invoke_kwargs(http, "srv_ticker", count=20, interval_s=0.1)
        path = f"/applications/srv_ticker/requests/{request_id}/progress"
        with http.stream("GET", path, headers={"Last-Event-ID": "0"}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data: "):
                    continue
                received = time.time()
                event = json.loads(line[6:])
                update = event.get("RequestProgressUpdated")
                if update is not None:
                    latencies.append(received - _epoch_s(update["created_at"]))
    assert len(latencies) == 20
    median, worst = statistics.median(latencies), max(latencies)
    print(f"progress latency: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms")
    assert median < 0.1, latencies
    assert worst < 0.5, latencies
