"""The application the crash tests kill workers in. Side effects go to a file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cairn import RequestContext, Retries, application, function


def _record(label: str) -> None:
    with open(os.environ["CAIRN_TEST_EFFECTS"], "a") as handle:
        handle.write(label + "\n")


@function()
def crash_step(i: int) -> int:
    _record(f"step {i}")
    time.sleep(float(os.environ.get("CAIRN_TEST_STEP_S", "0")))
    return i * i


@function()
def crash_item(i: int) -> int:
    _record(f"item {i}")
    time.sleep(float(os.environ.get("CAIRN_TEST_STEP_S", "0")))
    return i + 1


@function(retries=Retries(max_retries=3, initial_delay=0.5, max_delay=0.5))
def crash_flaky(i: int) -> int:
    marker = Path(os.environ["CAIRN_TEST_EFFECTS"]).with_suffix(".flaky")
    _record(f"flaky {i}")
    if not marker.exists():
        marker.touch()
        raise ConnectionError("first attempt fails")
    return i


@application()
@function()
def crash_pipeline(n: int) -> int:
    ctx = RequestContext.get()
    total = 0
    for i in range(n):
        ctx.progress.update(i, n)
        total += crash_step(i)
    total += sum(crash_item.map(list(range(n))))
    return total + crash_flaky(n)


def expected_output(n: int) -> int:
    """What an uninterrupted run returns."""
    return sum(i * i for i in range(n)) + sum(i + 1 for i in range(n)) + n


@function()
def crash_tree(depth: int) -> int:
    if depth == 0:
        return 1
    return sum(crash_tree.map([depth - 1] * 5))


@application()
@function()
def crash_forest(depth: int) -> int:
    return crash_tree(depth)


@function()
def crash_where(i: int) -> list[int]:
    import threading

    return [os.getpid(), threading.active_count()]


@application()
@function()
def crash_wide(n: int) -> list[int]:
    seen = crash_where.map(range(n))
    return [len({pid for pid, _ in seen}), max(threads for _, threads in seen)]


@function()
def crash_ten_step(i: int) -> int:
    label = f"r{RequestContext.get().request_id} {i}"
    _record(label)
    # When each execution began, to compare with when its call's checkpoint
    # committed: none may begin after that.
    with open(os.environ["CAIRN_TEST_EFFECTS"] + ".times", "a") as handle:
        handle.write(f"{label}\t{time.time() * 1000:.3f}\n")
    time.sleep(float(os.environ.get("CAIRN_TEST_STEP_S", "0.01")))
    return i


@application()
@function()
def crash_ten(seed: int) -> int:
    return sum(crash_ten_step(seed + i) for i in range(10))


@function()
def crash_slow(i: int) -> int:
    time.sleep(0.1)
    _record(f"slow {i}")
    return i


@application()
@function()
def crash_long(n: int) -> int:
    return sum(crash_slow(i) for i in range(n))


@function()
def crash_spread_item(i: int) -> int:
    time.sleep(0.005)
    # The executor's parent is the worker that runs it.
    _record(f"worker {os.getppid()}")
    return i


@application()
@function()
def crash_spread(n: int) -> int:
    return sum(crash_spread_item.map(range(n)))


@function(max_concurrency=2)
def crash_capped(i: int) -> int:
    _record(f"start {time.monotonic()}")
    time.sleep(0.2)
    _record(f"end {time.monotonic()}")
    return i


@application()
@function()
def crash_capped_app(n: int) -> int:
    return sum(crash_capped.map(range(n)))
