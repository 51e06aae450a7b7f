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
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MODES = ("off", "traced", "metered")
LABELS = {
    "off": "nothing configured",
    "traced": "OpenTelemetry SDK tracer",
    "metered": "Prometheus metrics on",
}
INTERVAL_MS = 20
TARGET_MS = 50.0

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
        time.sleep(INTERVAL_S)
    return n
"""


def stream_latency_ms(chunks: int) -> list[float]:
    import httpx

    sys.path.insert(0, str(REPO))
    from tests.server.support import launch

    with tempfile.TemporaryDirectory() as folder:
        apps = Path(folder) / "bench_stream_app.py"
        apps.write_text(
            textwrap.dedent(STREAM_APP.replace("INTERVAL_S", str(INTERVAL_MS / 1000)))
        )
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


def _summary_ms(delays: list[float]) -> dict[str, float]:
    ordered = sorted(delays)
    return {
        "median": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "max": ordered[-1],
        "over_target": sum(1 for d in ordered if d > TARGET_MS),
    }


def measure_all(rounds: int, calls: int, chunks: int) -> dict[str, Any]:
    """The figures of ``make bench``'s observability section: a failed run is
    kept as an error, the others still count."""
    found: dict[str, list[float]] = {m: [] for m in MODES}
    errors: list[str] = []
    for index in range(rounds):
        order = MODES[index % len(MODES) :] + MODES[: index % len(MODES)]
        for mode in order:
            try:
                found[mode].append(per_call_us(mode, calls, None))
            except (subprocess.SubprocessError, ValueError, IndexError) as error:
                tail = getattr(error, "stderr", None) or ""
                errors.append(f"{mode}, round {index + 1}: {error} {tail[-300:]}")
                found[mode].append(float("nan"))
    print(f"observability per call (µs): {json.dumps(found)}", file=sys.stderr)
    stream: dict[str, Any] = {"chunks": chunks, "interval_ms": INTERVAL_MS}
    try:
        delays = stream_latency_ms(chunks)
        if len(delays) != chunks:
            errors.append(f"stream: the client read {len(delays)} of {chunks} chunks")
        if delays:
            stream["ms"] = _summary_ms(delays)
    except Exception as error:
        errors.append(f"stream: {error!r}")
    print(f"stream latency: {json.dumps(stream)}", file=sys.stderr)
    return {"calls": calls, "per_call_us": found, "stream": stream, "errors": errors}


def _stat_us(values: list[float]) -> dict[str, float] | None:
    kept = [v for v in values if v == v]  # a failed run is NaN
    if not kept:
        return None
    return {
        "median": statistics.median(kept),
        "min": min(kept),
        "max": max(kept),
        "runs": len(kept),
    }


def _plain_us(doc: dict[str, Any]) -> dict[str, float] | None:
    """Table 1's Cairn figure at ``sqlite-normal`` (the setting measured here),
    in µs per call."""
    for figure in doc.get("figures", []):
        if (figure["workload"], figure["setting"]) != ("seq", "sqlite-normal"):
            continue
        if figure["n"] != doc["sizes"]["seq"]:
            continue
        stat = (figure["systems"].get("cairn") or {}).get("headline")
        if stat:
            return {k: stat[k] * 1000 for k in ("median", "min", "max")} | {
                "runs": stat["runs"]
            }
    return None


def _per_round(found: dict[str, list[float]], mode: str) -> tuple[str, str]:
    """Median over the rounds of ``mode`` ÷ ``off`` and ``mode`` - ``off``."""
    pairs = [
        (mine, off)
        for mine, off in zip(found[mode], found["off"], strict=True)
        if mine == mine and off == off
    ]
    if not pairs:
        return "-", "-"
    ratio = statistics.median(mine / off for mine, off in pairs)
    extra = statistics.median(mine - off for mine, off in pairs)
    return f"{ratio:.2f}", f"{extra:+.1f}"


def section(doc: dict[str, Any], number: int) -> list[str]:
    """The markdown of the benchmark page's section on observability's cost."""
    figures = doc.get("observability") or {}
    calls = figures.get("calls", 2_000)
    out = [
        f"### {number}. Observability: per-call cost with tracing and metrics, "
        "and streamed output's latency",
        "",
        "Cairn alone (`bench/observability.py`). Each round runs a request of "
        f"{calls:,} sequential checkpointed no-op calls "
        "(`bench_sequential`, after an untimed 3-call warm-up) in a fresh process "
        "on a fresh SQLite store (`synchronous=NORMAL`, so that the engine, not "
        "the disk, is measured; 2 executors) once per configuration, in an order "
        "that rotates from round to round: nothing configured (no tracer "
        "provider, metrics off: what every user gets), an OpenTelemetry SDK "
        "tracer provider whose processor drops the spans (the cost of making "
        "them, not of an exporter's network), and Prometheus metrics on (`cairn "
        "serve`'s setting). Time from invoke to output ÷ calls, in µs. The first "
        "row is table 1's Cairn figure at `sqlite-normal` in this same run "
        "(another harness: a warm worker process, the plain loop subtracted), "
        "for comparison with *nothing configured*. The last two columns compare "
        "each configuration with nothing configured within each round.",
        "",
    ]
    if not figures:
        return [*out, "Not run.", ""]
    found = figures["per_call_us"]
    out += [
        "| configuration | µs per call | spread [min - max] | runs "
        "| ÷ nothing configured (per round) | µs per call added (per round) |",
        "|---|---|---|---|---|---|",
    ]
    plain = _plain_us(doc)
    out.append(
        "| table 1, Cairn at `sqlite-normal` | "
        + (
            f"{plain['median']:.1f} | [{plain['min']:.1f} - {plain['max']:.1f}] | "
            f"{plain['runs']} | - | - |"
            if plain
            else "- | - | 0 | - | - |"
        )
    )
    for mode, label in LABELS.items():
        stat = _stat_us(found[mode])
        ratio, extra = ("1", "0") if mode == "off" else _per_round(found, mode)
        cells = (
            f"{stat['median']:.1f} | [{stat['min']:.1f} - {stat['max']:.1f}] | "
            f"{stat['runs']}"
            if stat
            else "**failed** | - | 0"
        )
        out.append(f"| {label} | {cells} | {ratio} | {extra} |")
    off = _stat_us(found["off"])
    if off and plain:
        out += [
            "",
            f"Nothing configured ÷ table 1: {off['median'] / plain['median']:.2f}, "
            "a ratio of medians from two harnesses (a fresh process per request "
            "here, a warm worker there), so it says how near the two figures "
            "are, not what observability costs; that is the per-round comparison "
            "of each configuration with nothing configured.",
        ]
    stream = figures["stream"]
    out += [
        "",
        f"**Streamed output.** `cairn serve` on loopback and a fresh SQLite store; "
        f"an application writes {stream['chunks']} chunks, one every "
        f"{stream['interval_ms']} ms, each stamped with the wall clock when "
        "`ctx.stream.write` is called; a client follows the request's `.../stream` "
        "and takes the delay when it has parsed the chunk. Target: "
        f"{TARGET_MS:.0f} ms (met when the p95 is within it).",
        "",
        "| chunks | median ms | p95 ms | max ms | chunks over "
        f"{TARGET_MS:.0f} ms | p95 ≤ {TARGET_MS:.0f} ms |",
        "|---|---|---|---|---|---|",
    ]
    ms = stream.get("ms")
    out.append(
        f"| {stream['chunks']} | {ms['median']:.1f} | {ms['p95']:.1f} | "
        f"{ms['max']:.1f} | {ms['over_target']} | "
        f"{'yes' if ms['p95'] <= TARGET_MS else '**no**'} |"
        if ms
        else f"| {stream['chunks']} | **failed** | - | - | - | - |"
    )
    if figures["errors"]:
        out += ["", "Errors:", "", *(f"- {e}" for e in figures["errors"])]
    return [*out, ""]


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
    ms = _summary_ms(stream_latency_ms(args.chunks))
    print(f"ctx.stream.write -> client on loopback, {args.chunks} chunks (ms):")
    print(f"  median {ms['median']:.1f}  p95 {ms['p95']:.1f}  max {ms['max']:.1f}")


if __name__ == "__main__":
    main()
