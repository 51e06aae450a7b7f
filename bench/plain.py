"""The no-op every engine checkpoints, its plain-Python loop, and the expected sum.

No imports: the Cairn, DBOS and floor workers all use these, whatever their
interpreter has installed.
"""

from __future__ import annotations


def plain_noop(i: int) -> int:
    """The work of one call: nothing but returning its argument."""
    return i


def plain_sequential(n: int) -> int:
    """The loop of every sequential application, over plain Python calls."""
    total = 0
    for i in range(n):
        total += plain_noop(i)
    return total


def expected_sum(n: int) -> int:
    """What every application of the benchmark returns for ``n``."""
    return n * (n - 1) // 2
