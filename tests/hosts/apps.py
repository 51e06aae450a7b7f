"""Applications of the two-hosts tests (``tests/hosts``); names start with ``hosts_``.

Each process is started with ``HOST_TAG`` naming its host ("a" or "b"); side
effects go to ``$CAIRN_TEST_EFFECTS``, a file every namespace sees.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from cairn import application, function


def _record(line: str) -> None:
    with open(os.environ["CAIRN_TEST_EFFECTS"], "a") as handle:
        handle.write(line + "\n")


def _where() -> str:
    """``TAG PID``: the host and the worker (the executor's parent) running the code."""
    return f"{os.environ['HOST_TAG']} {os.getppid()}"


@function()
def hosts_where(i: int) -> tuple[int, str]:
    return i, _where()


@application()
@function()
def hosts_spread(n: int) -> dict[str, Any]:
    """Sum of ``range(n)`` and how many items each worker ran."""
    ran_on: dict[str, int] = {}
    total = 0
    for i, where in hosts_where.map(range(n)):
        total += i
        ran_on[where] = ran_on.get(where, 0) + 1
    return {"total": total, "ran_on": ran_on}


@function()
def hosts_hold(i: int) -> int:
    """Starts, then on host b blocks (until killed); elsewhere takes 0.2 s."""
    _record(f"start {i} {_where()}")
    if os.environ["HOST_TAG"] == "b":
        release = Path(os.environ["CAIRN_TEST_EFFECTS"]).with_suffix(".release")
        while not release.exists():
            time.sleep(0.05)
    else:
        time.sleep(0.2)
    _record(f"done {i} {_where()}")
    return i * i


@application()
@function()
def hosts_handover(n: int) -> int:
    return sum(hosts_hold.map(range(n)))


@function(max_concurrency=2)
def hosts_capped(i: int) -> int:
    _record(f"start {time.monotonic()} {_where()}")
    time.sleep(0.2)
    _record(f"end {time.monotonic()} {_where()}")
    return i


@application()
@function()
def hosts_capped_app(n: int) -> int:
    return sum(hosts_capped.map(range(n)))
