"""A request's progress messages, every one of them, a page at a time.

The store reads progress events newest first (``list_progress``); each message
is shown with the run it belongs to (the last run started before it). The last
sequence number of a request (``last_seq``) is its event counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cairn.store import RunSpan, Store

# Progress messages per page of the log.
LOG_PAGE = 50


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
    run: int = 0

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
    return store.last_event_seq(request_id)


@dataclass(frozen=True, kw_only=True)
class LogPage:
    """A page of a request's progress messages (of one call if asked), oldest first."""

    lines: list[ProgressLine]
    older: int | None
    """Where the page before this one ends (its ``before``), if there is one."""
    before: int | None
    """This page's ``before`` (None: the newest page)."""


def run_of(runs: Sequence[RunSpan], seq: int) -> int:
    """The run an event belongs to: the last one started at or before it."""
    found = runs[0].run if runs else 1
    for run in runs:
        if run.first_seq <= seq:
            found = run.run
    return found


def log_page(
    store: Store,
    request_id: str,
    runs: Sequence[RunSpan],
    *,
    before: int | None = None,
    call_id: str | None = None,
    limit: int = LOG_PAGE,
) -> LogPage:
    """A page of progress messages: the newest, or those before ``before``."""
    events = store.list_progress(
        request_id, before_seq=before, limit=limit + 1, call_id=call_id
    )
    shown = events[:limit]
    lines = [
        progress_line(e.payload, e.seq, e.created_at_ms, run_of(runs, e.seq))
        for e in reversed(shown)
    ]
    older = shown[-1].seq if len(events) > limit else None
    return LogPage(lines=lines, older=older, before=before)


def progress_line(
    payload: dict[str, Any], seq: int = 0, created_at_ms: float = 0.0, run: int = 0
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
        run=run,
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _number_text(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
