"""The applications the benchmark runs, and their plain-Python twins.

Imported by ``workloads.py`` (never by ``run.py``). It is a module of its own, not
``__main__``, so that every workload process registers the same function names
(replay finds code by name) and values pickle the way they do in a real project.
Function names are unique in the process: ``bench_`` + what it is.
"""

from __future__ import annotations

from cairn import application, function


@function()
def bench_noop(i: int) -> int:
    """The checkpointed no-op: returns its argument."""
    return i


@application()
@function()
def bench_sequential(n: int) -> int:
    """``n`` sequential checkpointed calls of ``bench_noop``."""
    total = 0
    for i in range(n):
        total += bench_noop(i)
    return total


@function()
def bench_map_item(i: int) -> int:
    """One trivial ``map`` item."""
    return i


@application()
@function()
def bench_map(n: int) -> int:
    """``map`` over ``n`` trivial items."""
    return sum(bench_map_item.map(list(range(n))))


def plain_noop(i: int) -> int:
    """``bench_noop`` without Cairn."""
    return i


def plain_sequential(n: int) -> int:
    """The loop of ``bench_sequential`` over plain Python calls."""
    total = 0
    for i in range(n):
        total += plain_noop(i)
    return total


def expected_sum(n: int) -> int:
    """What every application above returns for ``n``."""
    return n * (n - 1) // 2
