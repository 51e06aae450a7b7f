"""Steps of the SQL store's write transactions, each run on an open transaction
(``Tx``): appending events, ending a request, what committing calls does besides
their rows, and counting a function's running calls for its cap.

On PostgreSQL every step that appends events or may end a request runs with the
request's row locked (``lock_request``, or the ``bump_event_seq`` that takes the
lock), so that event numbers are never reused and exactly one transaction sees a
request's last call finish. SQLite serializes writers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cairn import _events
from cairn.types import CallStatus, RequestStatus

from . import _rows
from ._dialect import Tx
from ._records import ClaimedCall, Event, RequestOutcome
from ._sqlbase import AfterCalls
from .errors import RequestNotFound

# A named query and its parameters, run once.
Named = tuple[str, dict[str, Any]]


def lock_request(tx: Tx, request_id: str) -> str | None:
    """Take the request's row lock; its application, None if there is no request."""
    row = tx.execute("lock_request", {"request_id": request_id}).fetchone()
    return None if row is None else str(row[0])


def numbering(request_id: str, count: int) -> Named:
    """The statement that takes ``count`` event numbers from the request's counter
    (on PostgreSQL, and the request's row lock until commit)."""
    return ("bump_event_seq", {"request_id": request_id, "count": count})


def inserting(request_id: str, count: int, numbered: list[tuple[int, Event]]) -> Named:
    """The statement that inserts events numbered 1 to ``count`` among the numbers
    a ``numbering(request_id, count)`` just before took."""
    return (
        "append_events",
        {
            "request_id": request_id,
            "count": count,
            "numbers": [number for number, _ in numbered],
            "kinds": [event.kind for _, event in numbered],
            "payloads": [json.dumps(event.payload) for _, event in numbered],
            "times": [event.created_at_ms for _, event in numbered],
        },
    )


def appending(request_id: str, events: list[Event]) -> list[Named]:
    """The statements that append events with the request's next sequence numbers
    (the second one's row count: how many it inserted)."""
    count = len(events)
    return [
        numbering(request_id, count),
        inserting(request_id, count, list(enumerate(events, 1))),
    ]


def appended(request_id: str, events: list[Event], inserted: int | None) -> None:
    """Raise RequestNotFound if an append of ``events`` inserted nothing."""
    if events and inserted == 0:
        raise RequestNotFound(f"no request with id {request_id!r}")


def append(tx: Tx, request_id: str, events: list[Event]) -> None:
    """Append events with the request's next sequence numbers."""
    bump, insert = appending(request_id, events)
    tx.execute(*bump)
    appended(request_id, events, tx.execute(*insert).rowcount)


def number(tx: Tx, plan: AfterCalls, request_ids: Iterable[str]) -> None:
    """Take each request's row (in one order: no deadlocks) and the event numbers
    ``plan`` gives its commit, before the call rows that use them."""
    for request_id in sorted(set(request_ids)):
        count = plan.counts.get(request_id, 0)
        if count:
            tx.execute(*numbering(request_id, count))
        else:
            # Not read: on PostgreSQL the lock goes with the rest, in one burst.
            tx.execute("lock_request", {"request_id": request_id})


def marks_and_events(plan: AfterCalls) -> list[Named]:
    """The statements of ``plan``'s served marks and event rows (numbered by
    ``number`` or a ``numbering`` before them)."""
    statements: list[Named] = []
    for run in sorted({run for run, _ in plan.served}):
        ids = [i for r, i in plan.served if r == run]
        statements.append(("mark_served", {"run": run, "ids": ids}))
    for request_id, numbered in sorted(plan.events.items()):
        statements.append(inserting(request_id, plan.counts[request_id], numbered))
    return statements


def after_calls(tx: Tx, plan: AfterCalls, now_ms: float) -> bool:
    """Served marks, events and request ends of committed outcomes (rows locked and
    numbered by ``number``); True if a request may have ended (its end is then
    known only once committed: nothing is read back for it)."""
    for statement in marks_and_events(plan):
        tx.execute(*statement)
    for key, outcome in plan.finishes:
        finish(tx, key.request_id, key.function, outcome, now_ms)
    may_end = bool(plan.finishes)
    for request_id in plan.finish_if_last:
        may_end = finish_if_last(tx, request_id, now_ms) or may_end
    return may_end


def finish(
    tx: Tx, request_id: str, application: str, outcome: RequestOutcome, now_ms: float
) -> None:
    """End a request (its row locked) with its RequestFinished, unless it has ended
    already or it succeeded with calls still running (those keep its output, and the
    last one ends it). Reads nothing back, so that on PostgreSQL the commit is sent
    whole."""
    params = {"request_id": request_id}
    succeeded = outcome.status is RequestStatus.SUCCEEDED
    if succeeded:
        tx.execute("request_output", {**params, "output": outcome.output})
    else:
        tx.execute("cancel_pending", params)
    finished = _events.request_finished(request_id, application, outcome, now_ms)
    tx.execute(
        "end_request",
        {
            **params,
            "status": str(outcome.status),
            "succeeded": succeeded,
            "output": outcome.output,
            "failure_reason": outcome.failure_reason,
            "error_json": json.dumps(outcome.error) if outcome.error else None,
            "payload": json.dumps(finished.payload),
            "now_ms": now_ms,
        },
    )


def finish_if_last(tx: Tx, request_id: str, now_ms: float) -> bool:
    """End a request whose application call succeeded, if no call it started runs;
    True if it may have ended."""
    root = tx.execute("root_outcome", {"request_id": request_id}).fetchone()
    if (
        root is None
        or root[0] != CallStatus.SUCCEEDED
        or RequestStatus(root[2]).finished
    ):
        return False
    output = None if root[1] is None else bytes(root[1])
    finish(
        tx,
        request_id,
        root[3],
        RequestOutcome(status=RequestStatus.SUCCEEDED, output=output),
        now_ms,
    )
    return True


def at_cap(tx: Tx, caps: Mapping[str, int]) -> list[str]:
    """Functions whose running calls (across every worker) reached their cap; a
    hint, read without a lock (``running`` settles it)."""
    rows = tx.execute("running_counts", {"names": list(caps)}).fetchall()
    return [function for function, count in rows if count >= caps[function]]


def running(tx: Tx, function: str) -> int:
    """Running calls of a function, counted under its lock (``lock_function``)."""
    tx.execute("lock_function", {"function": function})
    row = tx.execute("count_running", {"function": function}).fetchone()
    return int(row[0]) if row else 0


def claimed(row: Any) -> ClaimedCall:
    """A row of ``claimed_columns``: the call, its arguments, its request's run."""
    return ClaimedCall(
        record=_rows.call(row[:20]),
        args=None if row[20] is None else bytes(row[20]),
        request_run=int(row[21]),
        strict_replay=bool(row[22]),
        application=row[23],
    )
