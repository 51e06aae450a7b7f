"""The worker: executor processes that run calls, and the supervisor that keeps them.

- ``_executor``: an executor process's claim loop (user code runs there);
- ``_deadlines``: the deadlines an executor publishes in shared memory;
- ``_wake``: the pipes that wake executors and their supervisor;
- ``_supervisor``: the pool of executors: spawn, kill, replace, heartbeat;
- ``_policing``: deadlines, memory limits, cancels and deaths end attempts;
- ``_engine``: a supervisor run as a long-lived worker or for one request;
- ``_local``: this process's own engine, behind ``local_engine``.
"""

from __future__ import annotations

from ._engine import Engine
from ._local import (
    close_local_engine,
    hand_off_here,
    local_engine,
    local_owner,
    run_here,
)
from ._supervisor import default_concurrency

__all__ = [
    "Engine",
    "close_local_engine",
    "default_concurrency",
    "hand_off_here",
    "local_engine",
    "local_owner",
    "run_here",
]
