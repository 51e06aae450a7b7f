"""Peak resident memory of a workload: this process and the processes it forked.

Linux only (``/proc``); elsewhere the figures are left out. A worker process runs
many workloads, so before each timed request it resets the kernel's high-water
mark (``VmHWM``) of itself and of its live children (``/proc/PID/clear_refs``,
value 5) to their current size: the peak it reads afterwards belongs to that
request, on top of what the process already held.
"""

from __future__ import annotations

import os
from typing import Any


def _status_kb(pid: int | str, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def children() -> list[int]:
    """Pids of this process's live children (Cairn's executors)."""
    me = os.getpid()
    found = []
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return []
    for pid in entries:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                stat = handle.read()
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _reset(pid: int | str) -> None:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


class Memory:
    """Peaks of this process and of its children since the last ``reset``."""

    def __init__(self, *, reset: bool = True) -> None:
        self.start_kb = 0
        self.children_peak_kb: dict[int, int] = {}
        if reset:
            self.reset()

    def reset(self) -> None:
        """Start a new measurement: peaks restart from the current sizes."""
        _reset("self")
        for pid in children():
            _reset(pid)
        self.start_kb = _status_kb("self", "VmRSS") or 0
        self.children_peak_kb: dict[int, int] = {}

    def sample(self) -> None:
        """Read the children's peaks while they are alive (after each request)."""
        for pid in children():
            peak = _status_kb(pid, "VmHWM")
            if peak:
                self.children_peak_kb[pid] = max(
                    peak, self.children_peak_kb.get(pid, 0)
                )

    def report(self) -> dict[str, Any]:
        """KiB. ``tree_kb`` adds the peaks of every process: an upper bound, since
        pages a forked child shares with its parent count in both."""
        main = _status_kb("self", "VmHWM") or 0
        kids = list(self.children_peak_kb.values())
        return {
            "main_kb": main,
            "main_start_kb": self.start_kb,
            "children": len(kids),
            "children_max_kb": max(kids, default=0),
            "tree_kb": main + sum(kids),
        }
