"""The latest progress messages of a request, read from the end of its events.

The store reads events forwards from a sequence number. A request with a large
map has tens of thousands of events and the page wants only the last few
progress messages, so the last sequence number is found first (a handful of
indexed probes) and the events are read backwards from there, one window at a
time, up to a bounded number of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cairn.store import EventRecord, Store

PROGRESS = "RequestProgressUpdated"
_WINDOW = 1000
# Events looked at, at most, to find the wanted ones: progress messages older
# than the latest 5,000 events of a request are not shown.
_SCAN_LIMIT = 5_000


@dataclass(frozen=True, kw_only=True)
class ProgressLine:
    """One progress update (a request's latest one, or one of its events)."""

    seq: int
    created_at_ms: float
    function: str
    call_id: str
    step: float | None
    total: float | None
    message: str

    @property
    def percent(self) -> float | None:
        """Done in percent, or None when the total is unknown (0)."""
        if self.step is None or not self.total:
            return None
        return round(min(max(self.step / self.total * 100.0, 0.0), 100.0), 1)

    @property
    def counts(self) -> str:
        """``3 / 10`` (or ``3`` without a total)."""
        step = _number_text(self.step)
        return f"{step} / {_number_text(self.total)}" if self.total else step

    def as_json(self) -> dict[str, Any]:
        """What a live stream sends for it."""
        return {"percent": self.percent, "counts": self.counts, "message": self.message}


def last_seq(store: Store, request_id: str) -> int:
    """The highest event sequence number of a request (0 if it has none)."""
    low = 0  # an event after `low` exists (or low is 0)
    if not store.list_events(request_id, 0, limit=1):
        return 0
    high = _WINDOW
    while store.list_events(request_id, high, limit=1):
        low, high = high, high * 2
    # Now: some event is after `low`, none after `high`.
    while high - low > 1:
        middle = (low + high) // 2
        if store.list_events(request_id, middle, limit=1):
            low = middle
        else:
            high = middle
    return high


def tail(
    store: Store,
    request_id: str,
    *,
    kind: str,
    call_id: str | None = None,
    limit: int = 20,
    end: int | None = None,
) -> list[EventRecord]:
    """The last ``limit`` events of ``kind`` (of one call if given), oldest first.

    ``end``: the last sequence number looked at (the request's last by default).
    """
    end = last_seq(store, request_id) if end is None else end
    found: list[EventRecord] = []
    scanned = 0
    while end > 0 and len(found) < limit and scanned < _SCAN_LIMIT:
        start = max(end - _WINDOW, 0)
        window = store.list_events(request_id, start, limit=end - start)
        scanned += end - start
        for event in reversed(window):
            if event.seq > end:
                continue
            if event.kind != kind:
                continue
            if call_id is not None and event.payload.get("function_run_id") != call_id:
                continue
            found.append(event)
            if len(found) >= limit:
                break
        end = start
    return list(reversed(found))


def progress_line(
    payload: dict[str, Any], seq: int = 0, created_at_ms: float = 0.0
) -> ProgressLine:
    """A ``RequestProgressUpdated`` payload (or a request's latest progress)."""
    return ProgressLine(
        seq=seq,
        created_at_ms=created_at_ms,
        function=str(payload.get("function_name") or ""),
        call_id=str(payload.get("function_run_id") or ""),
        step=_number(payload.get("step")),
        total=_number(payload.get("total")),
        message=str(payload.get("message") or ""),
    )


def progress_lines(events: list[EventRecord]) -> list[ProgressLine]:
    """Progress events as lines to show."""
    return [
        progress_line(event.payload, event.seq, event.created_at_ms) for event in events
    ]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _number_text(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
