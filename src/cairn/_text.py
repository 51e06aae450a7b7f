"""Plain text the CLI and the dashboard both show: durations, times, errors, and
what the latest run of a request did with a call."""

from __future__ import annotations

import datetime
import time
from typing import TYPE_CHECKING, Any

from cairn.types import CallStatus

if TYPE_CHECKING:
    from cairn._request_ops import CallInfo
    from cairn.store import RequestRecord

_TEXT_LIMIT = 300


def duration(seconds: float | None) -> str:
    """``0.4ms``, ``12ms``, ``1.23s``, ``2m03s``, ``1h02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 0.001:
        return f"{seconds * 1000:.2f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def timestamp(ms: float | None) -> str:
    """Local time of an epoch-milliseconds instant."""
    if ms is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def clip(text: str, limit: int = _TEXT_LIMIT) -> str:
    """Shorten long text with an ellipsis."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_line(error: dict[str, Any] | None) -> str:
    """``Type: message`` of an error dict."""
    if not error:
        return ""
    kind, message = error.get("type") or "Error", error.get("message") or ""
    return f"{kind}: {message}" if message else str(kind)


def run_duration_s(record: RequestRecord, now_ms: float | None = None) -> float | None:
    """How long the latest run took (or has taken so far), from its real start to
    its real end as the store records them on the request (``started_at_ms`` is set
    again by each replay's first claim, ``finished_at_ms`` when the run ends: also
    by a cancel). None if the run has not started.
    """
    started = record.started_at_ms
    if started is None:
        return None
    end = record.finished_at_ms if record.status.finished else None
    if end is None:
        if record.status.finished:
            return None
        end = time.time() * 1000 if now_ms is None else now_ms
    return max(0.0, (end - started) / 1000.0)


def replay_marker(call: CallInfo) -> str:
    """What the latest run did with a call.

    ``checkpoint`` (served its output from its checkpoint), ``ran``, ``from run N``
    (not reached by the latest run), or empty (not started yet).
    """
    if call.served_from_checkpoint:
        return "checkpoint"
    if call.ran_in_latest_run:
        return "ran"
    if call.status in (CallStatus.PENDING, CallStatus.RUNNING) or not call.attempts:
        return ""
    return f"from run {call.attempts[-1].run}"
