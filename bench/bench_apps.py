"""Cairn's side of the benchmark: the applications its worker runs.

Imported by ``sys_cairn.py`` only. A module of its own, not ``__main__``, so that
every process registers the same function names (replay finds code by name) and
values pickle the way they do in a real project.
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
