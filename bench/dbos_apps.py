"""DBOS's side of the benchmark: the same applications with ``@DBOS.workflow`` and
``@DBOS.step``. Imported by ``sys_dbos.py`` only, in the DBOS virtual environment.
"""

from __future__ import annotations

from dbos import DBOS

MAP_QUEUE = "bench_map"
FORK_QUEUE = "bench_fork"
# How often the queues are polled and a handle's result is polled (DBOS's default
# is 1 s for both): short, so that no figure is a poll interval.
POLL_S = 0.05

# How many times a step body ran in this process: a replay must leave it unchanged.
EXECUTED = [0]


@DBOS.step()
def bench_noop(i: int) -> int:
    """The checkpointed no-op: returns its argument."""
    EXECUTED[0] += 1
    return i


@DBOS.workflow()
def bench_sequential(n: int) -> int:
    """``n`` sequential steps (3 for the 3-call request)."""
    total = 0
    for i in range(n):
        total += bench_noop(i)
    return total


@DBOS.step()
def bench_map_item(i: int) -> int:
    """One no-op item of the fan-out."""
    EXECUTED[0] += 1
    return i


@DBOS.workflow()
def bench_map(n: int) -> int:
    """DBOS's ``map``: enqueue one step per item on a queue, then collect the results
    in order (the fan-out of DBOS's queue tutorial)."""
    handles = [DBOS.enqueue_workflow(MAP_QUEUE, bench_map_item, i) for i in range(n)]
    return sum(handle.get_result(polling_interval_sec=POLL_S) for handle in handles)
