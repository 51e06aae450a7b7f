"""Cairn's side of the benchmark: the applications its worker runs.

Imported by ``sys_cairn.py``, and loaded by the ``cairn worker bench_apps``
processes of the worker-scaling workload (``workers.py``). A module of its own, not
``__main__``, so that every process registers the same function names (replay
finds code by name) and values pickle the way they do in a real project.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import cairn
from cairn import RequestContext, application, function


@function()
def bench_noop(i: int) -> int:
    """The checkpointed no-op: returns its argument."""
    return i


@application()
@function()
def bench_sequential(n: int) -> int:
    """``n`` sequential checkpointed calls of ``bench_noop`` (3 for the 3-call request)."""
    total = 0
    for i in range(n):
        total += bench_noop(i)
    return total


@function()
def bench_map_item(i: int) -> int:
    """One no-op ``map`` item."""
    return i


@application()
@function()
def bench_map(n: int) -> int:
    """``map`` over ``n`` no-op items, summed."""
    return sum(bench_map_item.map(list(range(n))))


@function()
def bench_tagged_item(i: int) -> str:
    """One no-op ``map`` item that returns which ``cairn worker`` ran it: the store
    clears a call's worker once its checkpoint commits, so the output says it."""
    del i
    return os.environ.get("BENCH_WORKER", "?")


@application()
@function()
def bench_map_by_worker(n: int) -> dict[str, int]:
    """``map`` over ``n`` tagged no-op items: how many items each worker ran."""
    return dict(Counter(bench_tagged_item.map(list(range(n)))))


@application()
@function()
def bench_ticker(count: int, interval_ms: int) -> int:
    """Reports progress ``count`` times, ``interval_ms`` apart."""
    ctx = RequestContext.get()
    for i in range(count):
        time.sleep(interval_ms / 1000)
        ctx.progress.update(i + 1, count, f"tick {i + 1}")
    return count


@application()
@function()
def bench_await_signal(i: int) -> int:
    """Parks until its signal ``go`` comes (bench/parked.py)."""
    return int(cairn.wait_for_signal("go")) + i


@application()
@function()
def bench_echo(i: int) -> int:
    """The peer of a resume: a fresh request that returns at once."""
    return i
