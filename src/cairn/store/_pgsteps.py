"""Steps of the PostgreSQL store's write transactions: each takes an open
connection inside a transaction (see ``postgres.py`` for the locking rules)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cairn import _events, errors
from cairn.types import CallStatus, RequestStatus

from . import _rows
from ._pg import Q
from ._pglink import Connection
from ._records import (
    CallFailure,
    CallSuccess,
    ClaimedCall,
    Event,
    RequestOutcome,
    RunningCall,
)
from ._sqlbase import AfterCalls


def lock_request(conn: Connection, request_id: str) -> bool:
    """Take the request's row lock (see lock_request); False if there is no request."""
    return (
        conn.execute(Q["lock_request"], {"request_id": request_id}).fetchone()
        is not None
    )


def after_calls(
    conn: Connection, done: Sequence[CallSuccess | CallFailure], now_ms: float
) -> bool:
    """Served marks, events and request ends of committed outcomes (rows locked);
    True if a request ended."""
    plan = AfterCalls.of(done)
    for run in sorted({run for run, _ in plan.served}):
        ids = [i for r, i in plan.served if r == run]
        conn.execute(Q["mark_served"], {"run": run, "ids": ids})
    for request_id, events in sorted(plan.events.items()):
        append(conn, request_id, events)
    ended = False
    for request_id, outcome in plan.finishes:
        ended = finish(conn, request_id, outcome, now_ms) or ended
    for request_id in plan.finish_if_last:
        ended = finish_if_last(conn, request_id, now_ms) or ended
    return ended


def finish(
    conn: Connection, request_id: str, outcome: RequestOutcome, now_ms: float
) -> bool:
    """End a request (its row locked), unless it succeeded with calls still running;
    True if it ended now."""
    if outcome.status is RequestStatus.SUCCEEDED:
        row = conn.execute(
            Q["count_unfinished_dispatched"], {"request_id": request_id}
        ).fetchone()
        if row and row[0]:
            # Fire-and-forget calls hold the request open; the last one ends it.
            conn.execute(
                "UPDATE requests SET output = %s WHERE id = %s",
                (outcome.output, request_id),
            )
            return False
    else:
        conn.execute(Q["cancel_pending"], {"request_id": request_id})
    row = conn.execute(
        "SELECT application, status FROM requests WHERE id = %s", (request_id,)
    ).fetchone()
    if row is None or RequestStatus(row[1]).finished:
        return False
    conn.execute(
        Q["finish_request"],
        {
            "request_id": request_id,
            "status": str(outcome.status),
            "output": outcome.output,
            "failure_reason": outcome.failure_reason,
            "error_json": json.dumps(outcome.error) if outcome.error else None,
            "now_ms": now_ms,
        },
    )
    append(
        conn,
        request_id,
        [_events.request_finished(request_id, row[0], outcome, now_ms)],
    )
    return True


def finish_if_last(conn: Connection, request_id: str, now_ms: float) -> bool:
    root = conn.execute(
        "SELECT c.status, r.output, r.status FROM calls c JOIN requests r "
        "ON r.id = c.request_id WHERE c.id = %s",
        (request_id,),
        binary=True,
    ).fetchone()
    if (
        root is None
        or root[0] != CallStatus.SUCCEEDED
        or RequestStatus(root[2]).finished
    ):
        return False
    output = None if root[1] is None else bytes(root[1])
    return finish(
        conn,
        request_id,
        RequestOutcome(status=RequestStatus.SUCCEEDED, output=output),
        now_ms,
    )


def append(conn: Connection, request_id: str, events: list[Event]) -> None:
    inserted = conn.execute(
        Q["append_events"],
        {
            "request_id": request_id,
            "kinds": [event.kind for event in events],
            "payloads": [json.dumps(event.payload) for event in events],
            "times": [event.created_at_ms for event in events],
        },
    ).rowcount
    if events and inserted == 0:
        raise errors.RequestNotFound(f"no request with id {request_id!r}")


def at_cap(conn: Connection, caps: Mapping[str, int]) -> list[str]:
    """Functions whose running calls (across every worker) reached their cap."""
    rows = conn.execute(Q["running_counts"], {"names": list(caps)}).fetchall()
    return [function for function, count in rows if count >= caps[function]]


def running(conn: Connection, function: str) -> int:
    """Running calls of a function, counted under its advisory lock."""
    conn.execute(Q["lock_function"], {"function": function})
    row = conn.execute(Q["count_running"], {"function": function}).fetchone()
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


def running_params(call: RunningCall) -> dict[str, Any]:
    return {
        **_rows.key_params(call.key),
        "run": call.run,
        "worker_id": call.worker_id,
        "executor": call.executor,
        "started_at_ms": call.started_at_ms,
        "concurrency_key": call.key.concurrency_key,
    }


def executor(conn: Connection) -> Callable[[str, Mapping[str, Any]], Any]:
    """Named queries run in ``conn``'s transaction (for ``_replays``, ``_flow``)."""

    def execute(name: str, params: Mapping[str, Any]) -> Any:
        return conn.execute(Q[name], params)

    return execute
