"""Per-application figures on the requests page, read from the store (no other
service): requests per minute, failure rate and p50/p95/p99 duration over the
last hour and the last day.

A request counts in a window when it was created in it; its duration is its
latest run's (start to finish). Percentiles are nearest-rank over the newest
``DURATIONS_LIMIT`` finished requests of the window: on a busy day they are
those of its most recent part, and the page says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cairn import _text
from cairn.store import Store
from cairn.types import RequestStatus

#: (label, seconds) of each window shown
WINDOWS = (("last hour", 3600), ("last day", 86400))
DURATIONS_LIMIT = 20_000


@dataclass(frozen=True)
class Figures:
    """One application's figures over one window."""

    requests: int
    per_minute: float
    failed: int
    finished: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    sampled: bool
    """The percentiles come from the newest DURATIONS_LIMIT finished requests."""

    @property
    def failure_rate(self) -> str:
        """Failed among succeeded and failed, as a percentage (``-`` if none)."""
        if not self.finished:
            return "-"
        return f"{100.0 * self.failed / self.finished:.1f}%"

    @property
    def rate(self) -> str:
        """Requests per minute, to two significant figures."""
        if not self.requests:
            return "0"
        return (
            f"{self.per_minute:.2g}"
            if self.per_minute < 10
            else f"{self.per_minute:.0f}"
        )

    def percentiles(self) -> str:
        """``p50 / p95 / p99`` as durations."""
        return " / ".join(
            _text.duration(v) for v in (self.p50_s, self.p95_s, self.p99_s)
        )


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of values in ascending order (None if empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def figures(store: Store, now_ms: float) -> dict[str, list[Figures]]:
    """Each application's figures, one per window of ``WINDOWS`` (in order)."""
    read = [
        store.request_stats(now_ms - seconds * 1000.0, DURATIONS_LIMIT)
        for _, seconds in WINDOWS
    ]
    applications = sorted({row[0] for counts, _ in read for row in counts})
    return {
        application: [
            _window(application, counts, durations, seconds)
            for (_, seconds), (counts, durations) in zip(WINDOWS, read, strict=True)
        ]
        for application in applications
    }


def _window(
    application: str,
    counts: list[tuple[str, str, int]],
    durations: list[tuple[str, float]],
    seconds: int,
) -> Figures:
    statuses = {status: n for app, status, n in counts if app == application}
    total = sum(statuses.values())
    failed = statuses.get(str(RequestStatus.FAILED), 0)
    finished = failed + statuses.get(str(RequestStatus.SUCCEEDED), 0)
    values = sorted(
        max(0.0, ms) / 1000.0 for app, ms in durations if app == application
    )
    return Figures(
        requests=total,
        per_minute=total / (seconds / 60.0),
        failed=failed,
        finished=finished,
        p50_s=percentile(values, 0.50),
        p95_s=percentile(values, 0.95),
        p99_s=percentile(values, 0.99),
        sampled=len(durations) >= DURATIONS_LIMIT,
    )
