"""The dashboard's reads: a request's calls a page at a time, map groups tallied,
counts, runs and progress messages, each answered by SQL from the indexes; and
searches of requests (id prefix, input, time range, order) and their ids a page
at a time for bulk actions.

A request of 10,000 calls is shown without reading every call: the call tree is a
parent's children a page at a time (a map's items folded into one entry, tallied
by SQL), a group's items a page at a time, and only the attempts of the calls
shown. ``Browsing`` is the operations' one implementation for both SQL stores,
over the named queries of ``sql/<dialect>_browse.sql``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cairn.types import CallStatus, RequestStatus

from . import _rows
from ._records import AttemptRecord, CallRecord, EventRecord, RequestRecord
from ._sqlbase import SqlBase

# The statuses of a call that did not succeed for good (shown as problems).
PROBLEMS = frozenset({CallStatus.FAILED, CallStatus.TIMED_OUT, CallStatus.CANCELLED})
# Statuses of a call that ran (an attempt of it ended) in the run it last started in.
_ENDED = frozenset({CallStatus.SUCCEEDED, CallStatus.FAILED, CallStatus.TIMED_OUT})


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEntry:
    """A call as the call tree shows it: its record, and whether it has children."""

    record: CallRecord
    has_children: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupTally:
    """The items of one map, counted by SQL."""

    id: str
    function: str
    items: int
    counts: dict[CallStatus, int]
    ran: int
    """Items that ran in the run asked about."""
    served: int
    """Items that run served from their checkpoints."""
    spans: dict[int, tuple[float, float | None]] = field(default_factory=dict)
    """Per run: the first start and the last end of the items' latest attempts in it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallCounts:
    """How many calls a request has, ran and served in a run, and failed."""

    total: int
    ran: int
    served: int
    problems: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpan:
    """One run of a request: when it started and ended (None: still going)."""

    run: int
    started_at_ms: float
    finished_at_ms: float | None
    first_seq: int
    """The sequence number of its first event (RequestStarted)."""
    outcome: str | None = None
    """``success``, the failure reason (``cancelled``, ``function_error``...), or
    None while it runs."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestQuery:
    """Which requests a search asks for (each condition off when None)."""

    application: str | None = None
    status: RequestStatus | None = None
    statuses: tuple[RequestStatus, ...] | None = None
    """Any of these statuses (a bulk action's: the finished, or the unfinished)."""
    text: str | None = None
    """A prefix of the request's id, or a piece of its input (JSON text)."""
    created_from_ms: float | None = None
    created_to_ms: float | None = None
    """Created before this instant (excluded)."""


# How a search orders its requests.
ORDERS = ("newest", "oldest", "longest")


class Reads(Protocol):
    """The dashboard's reads (part of ``Store``)."""

    def list_entries(
        self, request_id: str, parent_id: str | None, offset: int, limit: int
    ) -> list[tuple[str, bool]]:
        """A page of a parent's children in start order (the root's: the application
        call), as ``(id, folded)``: a map's items are one entry, its group id."""

    def count_entries(self, request_id: str, parent_id: str | None) -> int:
        """How many entries ``list_entries`` has for a parent."""

    def get_calls(self, call_ids: Sequence[str]) -> list[CallEntry]:
        """Calls by id, in no particular order (ids unknown are left out)."""

    def tally_groups(self, group_ids: Sequence[str], run: int) -> list[GroupTally]:
        """Map groups counted by status, with what ``run`` ran and served of them."""

    def list_group_items(
        self, group_id: str, offset: int, limit: int, *, problems: bool = False
    ) -> list[CallEntry]:
        """A page of a map group's items in item order (only failed ones if asked)."""

    def list_attempts_of(self, call_ids: Sequence[str]) -> list[AttemptRecord]:
        """The failed attempts of some calls (a success is the call's own record)."""

    def count_calls(self, request_id: str, run: int) -> CallCounts:
        """How many calls a request has, ran and served in ``run``, and failed."""

    def list_calls_where(
        self,
        request_id: str,
        run: int,
        *,
        ran: bool = False,
        problems: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> list[CallEntry]:
        """A page of a request's calls in start order: those that ran in ``run``,
        or those that did not succeed."""

    def count_rerun(self, request_id: str, since_ms: float | None) -> int:
        """How many calls a replay runs again: those that did not succeed, and
        those started at or after ``since_ms`` (a replay from a call)."""

    def list_runs(self, request_id: str) -> list[RunSpan]:
        """Every run of a request, from its events."""

    def code_versions(self, call_ids: Sequence[str]) -> dict[str, str | None]:
        """The code version that ran each call's latest attempt."""

    def search_requests(
        self,
        query: RequestQuery,
        *,
        order: str = "newest",
        offset: int = 0,
        limit: int = 50,
    ) -> list[RequestRecord]:
        """A page of the requests a query finds, ordered (``ORDERS``)."""

    def count_requests_matching(self, query: RequestQuery) -> int:
        """How many requests a query finds."""

    def request_ids_matching(
        self, query: RequestQuery, *, after: tuple[float, str] | None, limit: int
    ) -> list[tuple[str, str, float]]:
        """``(id, application, created_at_ms)`` of the requests a query finds, oldest
        first, after a ``(created_at_ms, id)`` cursor: a bulk action's next page."""

    def list_progress(
        self,
        request_id: str,
        *,
        before_seq: int | None = None,
        limit: int = 50,
        call_id: str | None = None,
    ) -> list[EventRecord]:
        """Progress events newest first, before ``before_seq`` (of one call if given)."""

    def request_stats(
        self, from_ms: float, durations_limit: int
    ) -> tuple[list[tuple[str, str, int]], list[tuple[str, float]]]:
        """Requests created since ``from_ms``: ``(application, status, count)``,
        and ``(application, duration_ms)`` of the newest ``durations_limit`` that
        finished (their latest run's)."""

    def list_stream_chunks(
        self, request_id: str, until_seq: int, limit: int
    ) -> list[EventRecord]:
        """Streamed chunks (``RequestStreamChunk``) newest first, up to ``until_seq``."""

    def pending_by_function(self) -> dict[str, int]:
        """Calls queued for an executor, by function."""


def ran_in(record: CallRecord, run: int) -> bool:
    """Whether a call ran (an attempt of it ended) in ``run``."""
    return record.run == run and record.status in _ENDED


def served_in(record: CallRecord, run: int) -> bool:
    """Whether ``run`` took the call's output from its checkpoint."""
    return record.served_run == run and record.run != run


class Browsing(SqlBase):
    """``Reads`` over a SQL store's named queries (``sql/<dialect>_browse.sql``)."""

    def _entries(self, name: str, params: Mapping[str, Any]) -> list[CallEntry]:
        return [
            CallEntry(record=_rows.call(row[:-1]), has_children=bool(row[-1]))
            for row in self._all(name, params)
        ]

    def list_entries(
        self, request_id: str, parent_id: str | None, offset: int, limit: int
    ) -> list[tuple[str, bool]]:
        """A page of a parent's children, a map's items folded into their group."""
        rows = self._all(
            "entries",
            {
                "request_id": request_id,
                "parent_id": parent_id,
                "offset": offset,
                "limit": limit,
            },
        )
        return [(row[0], bool(row[1])) for row in rows]

    def count_entries(self, request_id: str, parent_id: str | None) -> int:
        """How many entries a parent has."""
        rows = self._all(
            "entry_count",
            {"request_id": request_id, "parent_id": parent_id},
        )
        return int(rows[0][0])

    def get_calls(self, call_ids: Sequence[str]) -> list[CallEntry]:
        """Calls by id."""
        if not call_ids:
            return []
        return self._entries("calls_by_id", {"ids": list(call_ids)})

    def tally_groups(self, group_ids: Sequence[str], run: int) -> list[GroupTally]:
        """Map groups counted by status and run."""
        if not group_ids:
            return []
        rows = self._all(
            "group_tally",
            {"ids": list(group_ids), "run": run},
        )
        found: dict[str, dict[str, Any]] = {}
        for group_id, item_run, status, count, function, first, last, served in rows:
            tally = found.setdefault(
                group_id,
                {
                    "function": function,
                    "counts": {},
                    "ran": 0,
                    "served": 0,
                    "spans": {},
                },
            )
            status = CallStatus(status)
            count = int(count)
            tally["counts"][status] = tally["counts"].get(status, 0) + count
            if item_run == run and status in _ENDED:
                tally["ran"] += count
            if item_run != run:
                tally["served"] += int(served or 0)
            if first is not None:
                span = tally["spans"].get(item_run)
                end = last if span is None else _later(span[1], last)
                tally["spans"][item_run] = (
                    first if span is None else min(span[0], first),
                    end,
                )
        return [
            GroupTally(
                id=group_id,
                function=data["function"],
                items=sum(data["counts"].values()),
                counts=data["counts"],
                ran=data["ran"],
                served=data["served"],
                spans=data["spans"],
            )
            for group_id, data in found.items()
        ]

    def list_group_items(
        self, group_id: str, offset: int, limit: int, *, problems: bool = False
    ) -> list[CallEntry]:
        """A page of a map group's items in item order."""
        return self._entries(
            "group_items",
            {
                "group_id": group_id,
                "problems": int(problems),
                "offset": offset,
                "limit": limit,
            },
        )

    def list_attempts_of(self, call_ids: Sequence[str]) -> list[AttemptRecord]:
        """The failed attempts of some calls."""
        if not call_ids:
            return []
        rows = self._all("attempts_of", {"ids": list(call_ids)})
        return [_rows.attempt(row) for row in rows]

    def count_calls(self, request_id: str, run: int) -> CallCounts:
        """How many calls a request has, ran and served in ``run``, and failed."""
        total, ran, served, problems = self._all(
            "call_counts", {"request_id": request_id, "run": run}
        )[0]
        return CallCounts(
            total=int(total), ran=int(ran), served=int(served), problems=int(problems)
        )

    def list_calls_where(
        self,
        request_id: str,
        run: int,
        *,
        ran: bool = False,
        problems: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> list[CallEntry]:
        """A page of a request's calls in start order, filtered."""
        return self._entries(
            "calls_where",
            {
                "request_id": request_id,
                "run": run,
                "ran": int(ran),
                "problems": int(problems),
                "offset": offset,
                "limit": limit,
            },
        )

    def count_rerun(self, request_id: str, since_ms: float | None) -> int:
        """How many calls a replay runs again."""
        rows = self._all("rerun_count", {"request_id": request_id, "since": since_ms})
        return int(rows[0][0])

    def list_runs(self, request_id: str) -> list[RunSpan]:
        """Every run of a request: its first RequestStarted to the RequestFinished
        after it (a run's application call may start several times: after a
        child's timeout stopped it, it is run again)."""
        rows = self._all("run_events", {"request_id": request_id})
        runs: list[RunSpan] = []
        current: RunSpan | None = None
        for seq, kind, payload, created_at_ms in rows:
            data = json.loads(payload)
            if kind == "RequestStarted":
                run = data.get("run")
                if current is not None and current.run == run:
                    continue
                if current is not None:
                    runs.append(current)
                current = RunSpan(
                    run=int(run) if isinstance(run, int) else len(runs) + 1,
                    started_at_ms=created_at_ms,
                    finished_at_ms=None,
                    first_seq=int(seq),
                )
            elif current is not None and current.finished_at_ms is None:
                current = dataclasses.replace(
                    current,
                    finished_at_ms=created_at_ms,
                    outcome=_outcome(data.get("outcome")),
                )
        if current is not None:
            runs.append(current)
        return runs

    def code_versions(self, call_ids: Sequence[str]) -> dict[str, str | None]:
        """The code version that ran each call's latest attempt."""
        if not call_ids:
            return {}
        rows = self._all("code_versions", {"ids": list(call_ids)})
        return {row[0]: row[1] for row in rows}

    def _search(self, name: str, query: RequestQuery, **extra: Any) -> list[Any]:
        needle = None if query.text is None else query.text.encode()
        needle_json = None
        if query.text is not None:  # as JSON escapes it (non-ASCII, quotes)
            needle_json = json.dumps(query.text)[1:-1].encode()
        params = {
            "application": query.application,
            "status": None if query.status is None else str(query.status),
            "statuses": None
            if query.statuses is None
            else list([str(s) for s in query.statuses]),
            "text": query.text,
            "needle": needle,
            "needle_json": needle_json,
            "from_ms": query.created_from_ms,
            "to_ms": query.created_to_ms,
            **extra,
        }
        return self._all(name, params)

    def search_requests(
        self,
        query: RequestQuery,
        *,
        order: str = "newest",
        offset: int = 0,
        limit: int = 50,
    ) -> list[RequestRecord]:
        """A page of the requests a query finds, ordered."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}")
        rows = self._search(f"search_{order}", query, offset=offset, limit=limit)
        return [_rows.request(row) for row in rows]

    def count_requests_matching(self, query: RequestQuery) -> int:
        """How many requests a query finds."""
        return int(self._search("search_count", query)[0][0])

    def request_ids_matching(
        self, query: RequestQuery, *, after: tuple[float, str] | None, limit: int
    ) -> list[tuple[str, str, float]]:
        """A bulk action's next page of request ids, oldest first."""
        after_ms, after_id = (None, None) if after is None else after
        rows = self._search(
            "search_ids", query, after_ms=after_ms, after_id=after_id, limit=limit
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def list_progress(
        self,
        request_id: str,
        *,
        before_seq: int | None = None,
        limit: int = 50,
        call_id: str | None = None,
    ) -> list[EventRecord]:
        """Progress events newest first."""
        rows = self._all(
            "progress_events",
            {
                "request_id": request_id,
                "before": (1 << 62) if before_seq is None else before_seq,
                "call_id": call_id,
                "limit": limit,
            },
        )
        return [_event(row) for row in rows]

    def list_stream_chunks(
        self, request_id: str, until_seq: int, limit: int
    ) -> list[EventRecord]:
        """Streamed chunks (``RequestStreamChunk``) newest first, up to ``until_seq``."""
        rows = self._all(
            "stream_chunks",
            {"request_id": request_id, "until": until_seq, "limit": limit},
        )
        return [_event(row) for row in rows]

    def pending_by_function(self) -> dict[str, int]:
        """Calls queued for an executor, by function."""
        return {row[0]: int(row[1]) for row in self._all("pending_by_function", {})}

    def request_stats(
        self, from_ms: float, durations_limit: int
    ) -> tuple[list[tuple[str, str, int]], list[tuple[str, float]]]:
        """Requests created since ``from_ms``: ``(application, status, count)``,
        and ``(application, duration_ms)`` of the newest ``durations_limit`` that
        finished (their latest run's)."""
        counts = self._all("stats_counts", {"from_ms": from_ms})
        durations = self._all(
            "stats_durations", {"from_ms": from_ms, "limit": durations_limit}
        )
        return (
            [(row[0], str(row[1]), int(row[2])) for row in counts],
            [(row[0], float(row[1])) for row in durations],
        )


def _event(row: Any) -> EventRecord:
    return EventRecord(
        request_id=row[0],
        seq=int(row[1]),
        kind=row[2],
        payload=json.loads(row[3]),
        created_at_ms=row[4],
    )


def _outcome(value: Any) -> str:
    """A RequestFinished's outcome (``"success"`` or ``{"failure": reason}``)."""
    if isinstance(value, dict):
        return str(value.get("failure") or "unknown")
    return str(value or "unknown")


def _later(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)
