"""A request's call tree as table rows, each with its bar on the run's timeline.

The tree is flattened into rows in document order, each knowing its depth and its
ancestry (``path``) so that the page can fold a subtree. Map items under one
parent form one group row with counts per status; the page loads a group's items
on demand, a page of them at a time, and any long list of sibling calls is cut
with a "more" row, so that a request of 10,000 calls renders a few hundred rows.

The timeline is the latest run's: from its start to its end (or now), each call
drawn as one segment per attempt of that run; calls served from checkpoints did
not run in it and are marked instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from cairn import _request, _text
from cairn.store import AttemptRecord, RequestRecord
from cairn.types import CallStatus

# Rows a page (or a fragment) renders before cutting a list with a "more" row.
PAGE_ROWS = 300
# Items of a map group per fragment.
GROUP_PAGE = 100
# The narrowest bar drawn, in percent of the timeline, so that short calls show.
_MIN_WIDTH_PCT = 0.4

_PROBLEMS = frozenset(
    {CallStatus.FAILED, CallStatus.TIMED_OUT, CallStatus.CANCELLED, CallStatus.STALE}
)
_ORDER = [
    CallStatus.FAILED,
    CallStatus.TIMED_OUT,
    CallStatus.CANCELLED,
    CallStatus.RUNNING,
    CallStatus.PENDING,
    CallStatus.STALE,
    CallStatus.SUCCEEDED,
]


@dataclass(frozen=True, kw_only=True)
class Segment:
    """One attempt (or a group's span) on the timeline, in percent."""

    left: float
    width: float
    outcome: str
    title: str


@dataclass(frozen=True, kw_only=True)
class CallRow:
    """One call."""

    kind = "call"
    id: str
    path: str
    depth: int
    label: str
    call: _request.CallInfo
    attempts: str
    duration_s: float | None
    marker: str
    error: str
    segments: list[Segment]
    has_children: bool


@dataclass(frozen=True, kw_only=True)
class GroupRow:
    """The items of one ``map``, folded."""

    kind = "group"
    id: str
    path: str
    depth: int
    label: str
    status: str
    total: int
    counts: list[tuple[str, int]]
    problems: int
    ran: int
    served: int
    segments: list[Segment]


@dataclass(frozen=True, kw_only=True)
class MoreRow:
    """The rest of a list, loaded on demand from ``offset``."""

    kind = "more"
    path: str
    depth: int
    parent: str
    group: str
    offset: int
    remaining: int
    only_problems: bool


Row = CallRow | GroupRow | MoreRow


@dataclass(frozen=True, kw_only=True)
class _Group:
    id: str
    items: list[_request.CallInfo]


@dataclass
class _Budget:
    left: int


@dataclass(frozen=True, kw_only=True)
class Scale:
    """The latest run's time span; places instants on it in percent."""

    start_ms: float
    end_ms: float

    def place(self, start_ms: float, end_ms: float) -> tuple[float, float]:
        """Left edge and width (percent) of ``[start_ms, end_ms]``, clamped."""
        span = max(self.end_ms - self.start_ms, 1.0)
        left = min(max((start_ms - self.start_ms) / span * 100.0, 0.0), 100.0)
        right = min(max((end_ms - self.start_ms) / span * 100.0, 0.0), 100.0)
        width = max(right - left, _MIN_WIDTH_PCT)
        return round(min(left, 100.0 - width), 3), round(width, 3)

    @property
    def duration_s(self) -> float:
        """Length of the span."""
        return max(self.end_ms - self.start_ms, 0.0) / 1000.0


def label(call: _request.CallInfo) -> str:
    """``f``, ``f[3]`` (a map item), ``f.reduce``, ``f step 2``."""
    if call.kind == "map_item":
        return f"{call.function}[{call.seq}]"
    if call.kind == "reduce":
        return f"{call.function}.reduce"
    if call.kind == "reduce_step":
        return f"{call.function} step {call.seq}"
    return call.function


def error_line(error: dict[str, object] | None) -> str:
    """``Type: message`` of a recorded error, cut to a line's worth."""
    return _text.clip(_text.error_line(error))


def _attempts(call: _request.CallInfo) -> str:
    count = len(call.attempts)
    failed = sum(1 for a in call.attempts if a.outcome != "success")
    return f"{count} ({failed} failed)" if failed else str(count)


class Tree:
    """The rows of one request's calls."""

    def __init__(
        self,
        record: RequestRecord,
        calls: Sequence[_request.CallInfo],
        groups: dict[str, str | None],
        attempts: Sequence[AttemptRecord],
        now_ms: float,
    ) -> None:
        self.record = record
        self.by_id = {call.id: call for call in calls}
        self._groups = groups
        self._now_ms = now_ms
        self._children: dict[str | None, list[_request.CallInfo]] = {}
        for call in calls:
            self._children.setdefault(call.parent_id, []).append(call)
        self._runs: dict[str, list[AttemptRecord]] = {}
        for attempt in attempts:
            if attempt.run == record.run and attempt.started_at_ms is not None:
                self._runs.setdefault(attempt.call_id, []).append(attempt)
        self._entries: dict[str | None, list[_request.CallInfo | _Group]] = {}
        self._group_of: dict[str, _Group] = {}
        self.scale = self._scale()

    # -- structure ----------------------------------------------------------------

    def entries(self, parent_id: str | None) -> list[_request.CallInfo | _Group]:
        """A parent's children in start order, a map's items folded into a group."""
        if parent_id not in self._entries:
            found: list[_request.CallInfo | _Group] = []
            for call in self._children.get(parent_id, []):
                group_id = self._groups.get(call.id)
                if call.kind != "map_item" or group_id is None:
                    found.append(call)
                    continue
                group = self._group_of.get(group_id)
                if group is None:
                    group = self._group_of[group_id] = _Group(id=group_id, items=[])
                    found.append(group)
                group.items.append(call)
            for entry in found:
                if isinstance(entry, _Group):
                    entry.items.sort(key=lambda item: item.seq)
            self._entries[parent_id] = found
        return self._entries[parent_id]

    def group(self, group_id: str) -> _Group | None:
        """A map group by id (None if the request has none)."""
        if group_id not in self._group_of:
            for parent_id in list(self._children):
                self.entries(parent_id)
        return self._group_of.get(group_id)

    def path(self, call_id: str) -> str:
        """The ancestry of a call: ids from the root, a map item's group included."""
        parts: list[str] = []
        call = self.by_id.get(call_id)
        while call is not None:
            parts.append(call.id)
            group_id = self._groups.get(call.id)
            if call.kind == "map_item" and group_id is not None:
                parts.append(group_id)
            call = self.by_id.get(call.parent_id) if call.parent_id else None
        return "/".join(reversed(parts))

    # -- rows ----------------------------------------------------------------------

    def rows(self) -> list[Row]:
        """The first rows of the whole tree (groups folded)."""
        return list(self._walk(None, "", 0, 0, _Budget(PAGE_ROWS)))

    def child_rows(self, parent_id: str | None, offset: int) -> list[Row]:
        """A parent's (or the root's) children and their subtrees, from ``offset``."""
        base = self.path(parent_id) if parent_id else ""
        depth = base.count("/") + 1 if base else 0
        return list(self._walk(parent_id, base, depth, offset, _Budget(PAGE_ROWS)))

    def group_rows(self, group_id: str, offset: int, only_problems: bool) -> list[Row]:
        """A page of a map group's items (and their subtrees) from ``offset`` on."""
        group = self.group(group_id)
        if group is None:
            return []
        base = self.path(group.items[0].id).rpartition("/")[0]
        items = group.items
        if only_problems:
            items = [item for item in items if item.status in _PROBLEMS]
        depth = base.count("/") + 1
        budget = _Budget(PAGE_ROWS)
        found: list[Row] = []
        for index in range(offset, len(items)):
            if index - offset >= GROUP_PAGE or budget.left <= 0:
                found.append(
                    MoreRow(
                        path=f"{base}/+",
                        depth=depth,
                        parent="",
                        group=group_id,
                        offset=index,
                        remaining=len(items) - index,
                        only_problems=only_problems,
                    )
                )
                break
            found.extend(self._subtree(items[index], base, depth, budget))
        return found

    def _walk(
        self, parent_id: str | None, base: str, depth: int, offset: int, budget: _Budget
    ) -> Iterator[Row]:
        entries = self.entries(parent_id)
        for index in range(offset, len(entries)):
            if budget.left <= 0:
                yield MoreRow(
                    path=f"{base}/+" if base else "+",
                    depth=depth,
                    parent=parent_id or "",
                    group="",
                    offset=index,
                    remaining=len(entries) - index,
                    only_problems=False,
                )
                return
            entry = entries[index]
            if isinstance(entry, _Group):
                budget.left -= 1
                yield self._group_row(entry, base, depth)
            else:
                yield from self._subtree(entry, base, depth, budget)

    def _subtree(
        self, call: _request.CallInfo, base: str, depth: int, budget: _Budget
    ) -> Iterator[Row]:
        path = f"{base}/{call.id}" if base else call.id
        budget.left -= 1
        yield self._call_row(call, path, depth)
        yield from self._walk(call.id, path, depth + 1, 0, budget)

    def _call_row(self, call: _request.CallInfo, path: str, depth: int) -> CallRow:
        return CallRow(
            id=call.id,
            path=path,
            depth=depth,
            label=label(call),
            call=call,
            attempts=_attempts(call),
            duration_s=self._duration_s(call),
            marker=_text.replay_marker(call),
            error="" if call.status is CallStatus.SUCCEEDED else error_line(call.error),
            segments=self._segments(call),
            has_children=bool(self._children.get(call.id)),
        )

    def _group_row(self, group: _Group, base: str, depth: int) -> GroupRow:
        tally: dict[CallStatus, int] = {}
        for item in group.items:
            tally[item.status] = tally.get(item.status, 0) + 1
        counts = [(str(status), tally[status]) for status in _ORDER if status in tally]
        problems = sum(n for status, n in tally.items() if status in _PROBLEMS)
        if problems:
            status = next(s for s in _ORDER if s in tally and s in _PROBLEMS)
        elif tally.get(CallStatus.RUNNING) or tally.get(CallStatus.PENDING):
            status = CallStatus.RUNNING
        else:
            status = CallStatus.SUCCEEDED
        spans = [s for item in group.items for s in self._spans(item)]
        segments = []
        if spans:
            left, width = self.scale.place(
                min(start for start, _, _ in spans), max(end for _, end, _ in spans)
            )
            segments.append(
                Segment(
                    left=left,
                    width=width,
                    outcome=str(status),
                    title=f"{len(group.items)} items",
                )
            )
        first = group.items[0]
        return GroupRow(
            id=group.id,
            path=f"{base}/{group.id}" if base else group.id,
            depth=depth,
            label=f"{first.function}.map",
            status=str(status),
            total=len(group.items),
            counts=counts,
            problems=problems,
            ran=sum(1 for item in group.items if item.ran_in_latest_run),
            served=sum(1 for item in group.items if item.served_from_checkpoint),
            segments=segments,
        )

    # -- time ----------------------------------------------------------------------

    def _scale(self) -> Scale:
        # The latest run's real start and end, as the store records them on the
        # request (the application call's own times are its latest attempt's:
        # after a child's timeout stopped it, only the last stretch of the run).
        record = self.record
        start = record.started_at_ms or record.created_at_ms
        ends = [a.finished_at_ms for runs in self._runs.values() for a in runs]
        end = max([start, *ends])
        if not record.status.finished:
            end = max(end, self._now_ms)
        elif record.finished_at_ms is not None:
            end = max(end, record.finished_at_ms)
        return Scale(start_ms=start, end_ms=max(end, start + 1.0))

    def _spans(self, call: _request.CallInfo) -> list[tuple[float, float, str]]:
        spans = [
            (a.started_at_ms or 0.0, a.finished_at_ms, a.outcome)
            for a in self._runs.get(call.id, [])
        ]
        if call.id == self.record.id and spans:
            # The application call runs for the whole run, though the store keeps
            # the start of its latest execution (after a stopped child, a re-run).
            _, end, outcome = spans[-1]
            spans[-1] = (min(self.scale.start_ms, end), end, outcome)
        if call.status is CallStatus.RUNNING and call.started_at_ms is not None:
            latest_end = max((end for _, end, _ in spans), default=0.0)
            if call.started_at_ms >= latest_end:
                spans.append((call.started_at_ms, self._now_ms, "running"))
        return spans

    def _segments(self, call: _request.CallInfo) -> list[Segment]:
        segments = []
        for number, (start, end, outcome) in enumerate(self._spans(call), 1):
            left, width = self.scale.place(start, end)
            seconds = max(end - start, 0.0) / 1000.0
            segments.append(
                Segment(
                    left=left,
                    width=width,
                    outcome=outcome,
                    title=f"attempt {number} of this run: {outcome}, {seconds:.3f}s",
                )
            )
        return segments

    def _duration_s(self, call: _request.CallInfo) -> float | None:
        if call.status is CallStatus.RUNNING and call.started_at_ms is not None:
            return max(self._now_ms - call.started_at_ms, 0.0) / 1000.0
        return call.duration_s


@dataclass(frozen=True, kw_only=True)
class RunCounts:
    """What the latest run ran and what it served from checkpoints."""

    ran: int
    served: int
    total: int


def run_counts(calls: Sequence[_request.CallInfo]) -> RunCounts:
    """Counts over every call of a request."""
    return RunCounts(
        ran=sum(1 for c in calls if c.ran_in_latest_run),
        served=sum(1 for c in calls if c.served_from_checkpoint),
        total=len(calls),
    )
