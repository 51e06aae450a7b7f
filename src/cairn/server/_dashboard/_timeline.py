"""The request page's timeline: every run of the request, side by side.

Each run gets a lane of the track, as wide as its share of the time the runs took
(and never too narrow to see, so that a short replay after a long run shows); the
time between runs (hours, maybe) is left out. An instant is placed in the lane of
its run. The page's script lays the same lanes out again as a running request's
latest run grows (``as_json`` gives it what it needs); the server's layout is the
one a page shows as it loads.

Times are epoch milliseconds. Every run's start and end come from the store: the
latest run's from the request record, earlier runs' from their events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cairn.store import RequestRecord, RunSpan

# The narrowest bar drawn, in percent of the track, so that short calls show.
MIN_WIDTH_PCT = 0.4
# The gap between two runs' lanes, in percent of the track.
_GAP_PCT = 1.0
# A run's lane is at least this wide (in percent) when there are several.
_MIN_LANE_PCT = 10.0


@dataclass(frozen=True, kw_only=True)
class Lane:
    """One run's part of the track."""

    run: int
    start_ms: float
    end_ms: float
    left: float
    width: float
    running: bool

    @property
    def duration_s(self) -> float:
        """How long the run took (so far)."""
        return max(self.end_ms - self.start_ms, 0.0) / 1000.0


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """The lanes of a request's runs, at one moment."""

    lanes: list[Lane]

    def lane_of(self, run: int | None, at_ms: float) -> Lane | None:
        """The lane of ``run``, or else the one ``at_ms`` falls in (or nearest)."""
        for lane in self.lanes:
            if lane.run == run:
                return lane
        found = None
        for lane in self.lanes:
            if lane.start_ms <= at_ms:
                found = lane
        return found or (self.lanes[0] if self.lanes else None)

    def place(
        self, start_ms: float, end_ms: float, run: int | None = None
    ) -> tuple[float, float]:
        """Left edge and width (percent) of ``[start_ms, end_ms]`` in its run's lane."""
        lane = self.lane_of(run, start_ms)
        if lane is None:
            return 0.0, MIN_WIDTH_PCT
        span = max(lane.end_ms - lane.start_ms, 1.0)

        def x(at_ms: float) -> float:
            share = min(max((at_ms - lane.start_ms) / span, 0.0), 1.0)
            return lane.left + share * lane.width

        left, right = x(start_ms), x(end_ms)
        width = max(right - left, MIN_WIDTH_PCT)
        return round(min(left, 100.0 - width), 3), round(width, 3)

    def as_json(self) -> dict[str, Any]:
        """What the page's script needs to lay the lanes out again later."""
        return {
            "runs": [
                {
                    "run": lane.run,
                    "start": lane.start_ms,
                    "end": None if lane.running else lane.end_ms,
                }
                for lane in self.lanes
            ]
        }


def timeline(record: RequestRecord, runs: Sequence[RunSpan], now_ms: float) -> Timeline:
    """The lanes of every run of a request, as of ``now_ms``."""
    spans: dict[int, tuple[float, float | None]] = {}
    ordered = sorted(runs, key=lambda r: r.run)
    for index, run in enumerate(ordered):
        end = run.finished_at_ms
        if end is None and index + 1 < len(ordered):
            end = ordered[index + 1].started_at_ms  # abandoned: taken over by a replay
        spans[run.run] = (run.started_at_ms, end)
    if record.started_at_ms is not None:  # the latest run, as the request records it
        end = record.finished_at_ms if record.status.finished else None
        spans[record.run] = (record.started_at_ms, end)
    elif record.run not in spans and not spans:
        spans[record.run] = (record.created_at_ms, None)
    numbers = sorted(spans)
    return Timeline(lanes=_lanes([(n, *spans[n]) for n in numbers], now_ms))


def _lanes(spans: list[tuple[int, float, float | None]], now_ms: float) -> list[Lane]:
    count = len(spans)
    if not count:
        return []
    usable = 100.0 - _GAP_PCT * (count - 1)
    floor = usable if count == 1 else min(_MIN_LANE_PCT, usable / count / 2)
    ends = [max(end if end is not None else now_ms, start) for _, start, end in spans]
    lengths = [max(end - span[1], 1.0) for span, end in zip(spans, ends, strict=True)]
    total = sum(lengths)
    lanes = []
    left = 0.0
    for (run, start, end), finish, length in zip(spans, ends, lengths, strict=True):
        width = floor + (usable - floor * count) * length / total
        lanes.append(
            Lane(
                run=run,
                start_ms=start,
                end_ms=finish,
                left=round(left, 3),
                width=round(width, 3),
                running=end is None,
            )
        )
        left += width + _GAP_PCT
    return lanes
