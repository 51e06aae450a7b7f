"""Named fault points: places in the engine where a test can make the worker die.

Arm them with ``CAIRN_FAULTS`` (read when an executor starts), a comma-separated
list of ``name`` or ``name@N`` (die the N-th time the point is reached in that
process; default 1). Reaching an armed point SIGKILLs the worker that owns the
process (the supervisor, and with it every executor) and then the process itself:
a power cut, as far as the store can tell. Unarmed points cost one dict lookup.
"""

from __future__ import annotations

import os
import signal

from cairn import errors

#: every point, with where it sits; docs/faults.md documents them
POINTS = {
    "before_commit": "a call's code returned; its checkpoint is not committed yet",
    "after_commit": "a checkpoint committed; the caller has not been given the output",
    "mid_attempt": "a call's attempt has started; its code has not run yet",
    "map_fanout": "half of a map's items are written as runnable, the rest not yet",
    "retry_backoff": "a failed attempt was recorded; waiting out its backoff",
    "replay_serve": "a replay is serving a call's output from its checkpoint",
    "dispatched_claimed": "an executor claimed a dispatched call and holds it",
}

_armed: dict[str, int] = {}
_seen: dict[str, int] = {}
_worker_pid: int | None = None


def arm(spec: str | None, worker_pid: int | None) -> None:
    """Arm the points named in ``spec`` (``CAIRN_FAULTS`` syntax)."""
    global _worker_pid
    _armed.clear()
    _seen.clear()
    _worker_pid = worker_pid
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, nth = item.partition("@")
        if name not in POINTS:
            raise errors.SDKUsageError(
                f"CAIRN_FAULTS names unknown fault point {name!r} "
                f"(known: {', '.join(sorted(POINTS))})"
            )
        try:
            count = int(nth) if nth else 1
        except ValueError:
            raise errors.SDKUsageError(
                f"CAIRN_FAULTS: {item!r} must be NAME or NAME@N with N an int"
            ) from None
        if count < 1:
            raise errors.SDKUsageError(f"CAIRN_FAULTS: {item!r} must have N >= 1")
        _armed[name] = count


def point(name: str) -> None:
    """Die here if this point is armed and reached for the armed time."""
    if not _armed or name not in _armed:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != _armed[name]:
        return
    if _worker_pid is not None and _worker_pid != os.getpid():
        os.kill(_worker_pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
