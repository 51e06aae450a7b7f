"""Dialect-neutral pieces of the SQL stores (for the coming ``SqlStore`` base).

Only the PostgreSQL store uses this module so far; the SQLite store keeps its own
copies until the stores are unified.
"""

from __future__ import annotations

import os
import socket

# A worker whose heartbeat is older than this is taken for dead (as in sqlite.py).
WORKER_STALE_MS = 15_000.0


def alive(pid: int) -> bool:
    """Whether a process of this host is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_is_alive(host: str, pid: int) -> bool:
    """Whether a worker with a fresh heartbeat is really there.

    A worker on this host whose process is gone is dead now, not once its
    heartbeat goes stale; one on another host is taken at its heartbeat's word.
    """
    return host != socket.gethostname() or alive(pid)


def worker_is_dead(host: str, pid: int, heartbeat_at_ms: float, now_ms: float) -> bool:
    """A worker that stopped heartbeating, or whose process on this host is gone."""
    if heartbeat_at_ms < now_ms - WORKER_STALE_MS:
        return True
    return host == socket.gethostname() and not alive(pid)
