"""What observability costs, and how fast streamed output reaches a client.

``.venv/bin/python bench/observability.py [--base PATH_TO_OLDER_SRC]``

1. Per-call cost of the ``bench_sequential`` workload (N sequential checkpointed
   no-op calls in one request, SQLite with synchronous=normal so that the engine,
   not the disk, is measured), in rounds that rotate over:
   - ``base``: the code before observability (``--base``, a ``src`` folder of an
     older checkout), if given;
   - ``off``: this code, no tracer provider, metrics off (what every user gets);
   - ``traced``: an OpenTelemetry SDK provider whose processor drops the spans
     (the cost of making them, not of an exporter's network);
   - ``metered``: prometheus_client metrics on (``cairn serve``'s setting).
   Each run is a fresh process and store; the median per-call time is printed
   with its ratio to ``off``.
2. Streamed output: a ``cairn serve`` on loopback, an application writing chunks
   stamped with the wall clock every 20 ms, a client following ``.../stream``:
   the time from ``ctx.stream.write`` to the client reading the chunk.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MODES = ("off", "traced", "metered")

_RUN = """
import os, sys, time
mode, n, store = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sys.path.insert(0, {bench!r})
if mode == "traced":
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
if mode == "metered":
    from cairn.observability import _metrics
    _metrics.enable()
import cairn, bench_apps
url = "sqlite:///" + store + "?synchronous=normal"
cairn.run_local_application(bench_apps.bench_sequential, 3, cairn_store=url).output()
started = time.perf_counter()
cairn.run_local_application(bench_apps.bench_sequential, n, cairn_store=url).output()
print((time.perf_counter() - started) / n * 1e6)
"""


def per_call_us(mode: str, n: int, base: str | None) -> float:
    env = dict(os.environ)
    env["CAIRN_CONCURRENCY"] = "2"
    if mode == "base":
        env["PYTHONPATH"] = base or ""
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                _RUN.format(bench=str(BENCH)),
                "off" if mode == "base" else mode,
                str(n),
                str(Path(folder) / "b.db"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=True,
        )
    return float(done.stdout.split()[-1])


def overhead(rounds: int, n: int, base: str | None) -> dict[str, list[float]]:
    modes = (("base",) if base else ()) + MODES
    found: dict[str, list[float]] = {m: [] for m in modes}
    for index in range(rounds):
        order = modes[index % len(modes) :] + modes[: index % len(modes)]
        for mode in order:
            found[mode].append(per_call_us(mode, n, base))
    return found


STREAM_APP = """
import time
from cairn import RequestContext, application, function

@application()
@function()
def bench_stream(n: int) -> int:
    ctx = RequestContext.get()
    for i in range(n):
        ctx.stream.write({"i": i, "t": time.time()})
        time.sleep(0.02)
    return n
"""


def stream_latency_ms(chunks: int) -> list[float]:
    import httpx

    sys.path.insert(0, str(REPO))
    from tests.server.support import launch

    with tempfile.TemporaryDirectory() as folder:
        apps = Path(folder) / "bench_stream_app.py"
        apps.write_text(textwrap.dedent(STREAM_APP))
        server = launch(Path(folder) / "srv", apps=apps, concurrency=2)
        try:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                answer = http.post(
                    "/applications/bench_stream",
                    json=chunks,
                    headers={"Accept": "application/json"},
                )
                request_id = answer.json()["request_id"]
                path = f"/applications/bench_stream/requests/{request_id}/stream"
                delays = []
                with http.stream("GET", path) as response:
                    for line in response.iter_lines():
                        if not line.startswith("data: "):
                            continue
                        event = json.loads(line[6:])
                        chunk = event.get("RequestStreamChunk")
                        if chunk is None:
                            break
                        delays.append((time.time() - chunk["json"]["t"]) * 1000)
                return delays
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="src folder of the code before observability")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=200)
    args = parser.parse_args()
    found = overhead(args.rounds, args.calls, args.base)
    off = statistics.median(found["off"])
    print(f"per-call cost, {args.calls} sequential calls, {args.rounds} rounds (µs):")
    for mode, values in found.items():
        median = statistics.median(values)
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {mode:8} median {median:6.1f}  x{median / off:.3f} of off   [{runs}]")
    delays = sorted(stream_latency_ms(args.chunks))
    print(f"ctx.stream.write -> client on loopback, {len(delays)} chunks (ms):")
    print(
        f"  median {statistics.median(delays):.1f}  p95 "
        f"{delays[int(0.95 * (len(delays) - 1))]:.1f}  max {delays[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
