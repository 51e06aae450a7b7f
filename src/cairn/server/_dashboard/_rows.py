"""The call tree's rows, built from store records: plain, hashable data.

A row holds what its template shows and nothing that changes with the clock: a
running call's duration and the place of its bars on the timeline are worked out
when it is rendered (from ``now_ms`` and the ``Timeline``), so that a row's hash
changes only when the call does, and a live update sends only the rows that
changed (``_live``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from cairn import _text
from cairn.store import AttemptRecord, CallRecord, GroupTally, RequestRecord, RunSpan
from cairn.store._browse import PROBLEMS, ran_in, served_in
from cairn.types import CallStatus, RequestStatus

# Statuses of a map group, the first one present naming the group's own status.
_ORDER = [
    CallStatus.FAILED,
    CallStatus.TIMED_OUT,
    CallStatus.CANCELLED,
    CallStatus.RUNNING,
    CallStatus.PENDING,
    CallStatus.STALE,
    CallStatus.SUCCEEDED,
]
_RUN_OUTCOMES = {
    "success": "success",
    "cancelled": "cancelled",
    "function_timeout": "timed_out",
}


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One attempt of a call, in any run."""

    number: int
    run: int
    outcome: str
    """``success``, ``failure``, ``timed_out``, ``crashed``... or ``running``."""
    started_at_ms: float | None
    finished_at_ms: float | None
    error_type: str
    error_message: str
    traceback: str
    retry_delay_s: float | None
    code_version: str | None = None
    """The version of the code that ran it, where the store recorded one."""

    @property
    def duration_s(self) -> float | None:
        """How long it ran (None while it runs, or if its start is unknown)."""
        if self.started_at_ms is None or self.finished_at_ms is None:
            return None
        return max(self.finished_at_ms - self.started_at_ms, 0.0) / 1000.0


@dataclass(frozen=True, kw_only=True)
class Segment:
    """One bar on the timeline: an attempt, a run of the application, or a map's
    items in one run. ``end_ms`` None: still running (it ends at now)."""

    start_ms: float
    end_ms: float | None
    run: int
    outcome: str
    label: str


@dataclass(frozen=True, kw_only=True)
class CallRow:
    """One call."""

    kind = "call"
    key: str
    id: str
    path: str
    depth: int
    label: str
    function: str
    call_kind: str
    status: str
    attempts: str
    started_at_ms: float | None
    finished_at_ms: float | None
    running: bool
    marker: str
    error: str
    segments: tuple[Segment, ...]
    has_children: bool


@dataclass(frozen=True, kw_only=True)
class GroupRow:
    """The items of one ``map``, folded (or open: ``mode`` says how)."""

    kind = "group"
    key: str
    id: str
    path: str
    depth: int
    label: str
    status: str
    total: int
    counts: tuple[tuple[str, int], ...]
    problems: int
    ran: int
    served: int
    segments: tuple[Segment, ...]
    mode: str
    """``""`` folded, ``all`` or ``problems``: which items the page shows."""


@dataclass(frozen=True, kw_only=True)
class MoreRow:
    """The rest of a list: more of a parent's children, or of a group's items."""

    kind = "more"
    key: str
    path: str
    depth: int
    parent: str
    group: str
    shown: int
    remaining: int


Row = CallRow | GroupRow | MoreRow


def label(record: CallRecord) -> str:
    """``f``, ``f[3]`` (a map item), ``f.reduce``, ``f step 2``."""
    if record.kind == "map_item":
        return f"{record.function}[{record.seq}]"
    if record.kind == "map":  # a map over a Future's output, started when it is ready
        return f"{record.function}.map"
    if record.kind == "reduce":
        return f"{record.function}.reduce"
    if record.kind == "reduce_step":
        return f"{record.function} step {record.seq}"
    return record.function


def marker(record: CallRecord, run: int) -> str:
    """What the latest run did with a call: ``checkpoint`` (served its output),
    ``ran``, ``from run N`` (not reached by it), or empty (not started yet)."""
    if served_in(record, run):
        return "checkpoint"
    if ran_in(record, run):
        return "ran"
    if record.status in (CallStatus.PENDING, CallStatus.RUNNING) or not record.attempts:
        return ""
    return f"from run {record.run}"


def needs_attempts(record: CallRecord) -> bool:
    """Whether a call has failed attempts to read (a first-time success has none)."""
    return record.attempts > (1 if record.status is CallStatus.SUCCEEDED else 0)


def attempts(
    record: CallRecord,
    failed: Sequence[AttemptRecord],
    code_version: str | None = None,
) -> list[Attempt]:
    """Every attempt of a call: the failed ones, its success (run by
    ``code_version``), the one running."""
    found = [
        Attempt(
            number=a.attempt,
            run=a.run,
            outcome=a.outcome,
            started_at_ms=a.started_at_ms,
            finished_at_ms=a.finished_at_ms,
            error_type=str((a.error or {}).get("type") or "Error"),
            error_message=str((a.error or {}).get("message") or ""),
            traceback=str((a.error or {}).get("traceback") or ""),
            retry_delay_s=a.retry_delay_s,
            code_version=a.code_version,
        )
        for a in failed
    ]
    numbers = {a.number for a in found}
    if record.status is CallStatus.SUCCEEDED and record.attempts not in numbers:
        success = _attempt(record, max(record.attempts, 1), "success")
        found.append(dataclasses.replace(success, code_version=code_version))
    elif record.status is CallStatus.RUNNING and record.started_at_ms is not None:
        latest = max((a.finished_at_ms or 0.0 for a in found), default=0.0)
        if record.started_at_ms >= latest:
            found.append(_attempt(record, len(found) + 1, "running"))
    return sorted(found, key=lambda a: a.number)


def _attempt(record: CallRecord, number: int, outcome: str) -> Attempt:
    return Attempt(
        number=number,
        run=record.run,
        outcome=outcome,
        started_at_ms=record.started_at_ms,
        finished_at_ms=None if outcome == "running" else record.finished_at_ms,
        error_type="",
        error_message="",
        traceback="",
        retry_delay_s=None,
    )


def attempts_text(record: CallRecord, found: Sequence[Attempt]) -> str:
    """``3 (2 failed)``, ``1``."""
    ended = [a for a in found if a.outcome != "running"]
    count = max(record.attempts, len(ended))
    failed = sum(1 for a in ended if a.outcome != "success")
    return f"{count} ({failed} failed)" if failed else str(count)


def run_outcome(record: RequestRecord, run: RunSpan | None, number: int) -> str:
    """How run ``number`` of a request ended, as a bar's outcome."""
    if number == record.run:
        status = record.status
        if status is RequestStatus.SUCCEEDED:
            return "success"
        if not status.finished:
            return "running"
        reason = record.failure_reason or ""
        return _RUN_OUTCOMES.get(reason, "failure")
    if run is None or run.outcome is None:
        return "failure"
    return _RUN_OUTCOMES.get(run.outcome, "failure")


def call_row(
    record: CallRecord,
    found: Sequence[Attempt],
    *,
    request: RequestRecord,
    runs: Sequence[RunSpan],
    path: str,
    has_children: bool,
) -> CallRow:
    """A call as a row of the tree, its bars one per attempt over every run."""
    run = request.run
    if record.kind == "app":
        by_number = {r.run: r for r in runs}
        numbers = sorted({*by_number, run} if request.started_at_ms else by_number)
        segments = tuple(
            _run_segment(request, by_number.get(number), number) for number in numbers
        )
        started, finished = request.started_at_ms, request.finished_at_ms
        running = not request.status.finished
    else:
        segments = tuple(
            Segment(
                start_ms=a.started_at_ms,
                end_ms=a.finished_at_ms,
                run=a.run,
                outcome=a.outcome,
                label=f"attempt {a.number} · run {a.run} · {_outcome_text(a.outcome)}",
            )
            for a in found
            if a.started_at_ms is not None
        )
        started, finished = record.started_at_ms, record.finished_at_ms
        running = record.status is CallStatus.RUNNING
    ok = record.status is CallStatus.SUCCEEDED
    return CallRow(
        key=path,
        id=record.id,
        path=path,
        depth=path.count("/"),
        label=label(record),
        function=record.function,
        call_kind=record.kind,
        status=str(record.status),
        attempts=attempts_text(record, found),
        started_at_ms=started,
        finished_at_ms=None if running else finished,
        running=running,
        marker=marker(record, run),
        error="" if ok else _text.clip(_text.error_line(record.error)),
        segments=segments,
        has_children=has_children,
    )


def _run_segment(request: RequestRecord, span: RunSpan | None, number: int) -> Segment:
    if number == request.run and request.started_at_ms is not None:
        start: float = request.started_at_ms
        end = request.finished_at_ms if request.status.finished else None
    else:
        assert span is not None
        start, end = span.started_at_ms, span.finished_at_ms
    outcome = run_outcome(request, span, number)
    return Segment(
        start_ms=start,
        end_ms=end,
        run=number,
        outcome=outcome,
        label=f"run {number} · {_outcome_text(outcome)}",
    )


def _outcome_text(outcome: str) -> str:
    return outcome.replace("_", " ")


def group_status(counts: dict[CallStatus, int]) -> CallStatus:
    """A map's status: its worst problem, else running while any item is unfinished."""
    problems = [
        s for s in _ORDER if counts.get(s) and s in PROBLEMS | {CallStatus.STALE}
    ]
    if problems:
        return problems[0]
    if counts.get(CallStatus.RUNNING) or counts.get(CallStatus.PENDING):
        return CallStatus.RUNNING
    return CallStatus.SUCCEEDED


def group_row(tally: GroupTally, *, path: str, mode: str, run: int) -> GroupRow:
    """A map's items as one row: counts per status and one bar per run (the
    latest, ``run``, still growing while items are unfinished)."""
    status = group_status(tally.counts)
    going = bool(
        tally.counts.get(CallStatus.RUNNING) or tally.counts.get(CallStatus.PENDING)
    )
    counts = tuple((str(s), tally.counts[s]) for s in _ORDER if tally.counts.get(s))
    problems = sum(n for s, n in tally.counts.items() if s in PROBLEMS)
    segments = tuple(
        Segment(
            start_ms=start,
            end_ms=None if going and number == run else end,
            run=number,
            outcome=str(status),
            label=f"{tally.function}.map · run {number}",
        )
        for number, (start, end) in sorted(tally.spans.items())
    )
    return GroupRow(
        key=path,
        id=tally.id,
        path=path,
        depth=path.count("/"),
        label=f"{tally.function}.map",
        status=str(status),
        total=tally.items,
        counts=counts,
        problems=problems,
        ran=tally.ran,
        served=tally.served,
        segments=segments,
        mode=mode,
    )
