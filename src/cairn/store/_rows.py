"""Rows <-> records, shared by the SQL stores (same column order in every dialect)."""

from __future__ import annotations

import json
from typing import Any

from cairn import _events
from cairn.types import CallStatus, RequestStatus

from ._records import (
    AttemptRecord,
    CallKey,
    CallRecord,
    EventRecord,
    NewRequest,
    RecordedChild,
    RequestRecord,
)


def key_params(key: CallKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "request_id": key.request_id,
        "parent_id": key.parent_id,
        "seq": key.seq,
        "function": key.function,
        "kind": key.kind,
        "group_id": key.group_id,
        "dispatched": int(key.dispatched),
    }


def request_params(request: NewRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "application": request.application,
        "code_ref": request.code_ref,
        "input": request.input,
        "headers_json": json.dumps(request.headers),
        "created_at_ms": request.created_at_ms,
        "owner": request.owner,
        "priority": request.priority,
    }


def pending_params(
    key: CallKey, args: bytes | None, run: int, not_before_ms: float
) -> dict[str, Any]:
    return {
        **key_params(key),
        "args": args,
        "run": run,
        "not_before_ms": not_before_ms,
        "concurrency_key": key.concurrency_key,
    }


def call(row: Any) -> CallRecord:
    return CallRecord(
        id=row[0],
        request_id=row[1],
        parent_id=row[2],
        seq=row[3],
        function=row[4],
        kind=row[5],
        group_id=row[6],
        dispatched=bool(row[7]),
        status=CallStatus(row[8]),
        error=json.loads(row[9]) if row[9] else None,
        run=row[10],
        run_attempts=row[11],
        attempts=row[12],
        served_run=row[13],
        not_before_ms=row[14],
        worker_id=row[15],
        executor=row[16],
        has_state_writes=bool(row[17]),
        started_at_ms=row[18],
        finished_at_ms=row[19],
    )


def recorded_child(row: Any) -> RecordedChild:
    return RecordedChild(
        id=row[0],
        seq=row[1],
        status=CallStatus(row[2]),
        output=None if row[3] is None else bytes(row[3]),
        has_state_writes=bool(row[4]),
        args=None if row[5] is None else bytes(row[5]),
    )


def request(row: Any) -> RequestRecord:
    return RequestRecord(
        id=row[0],
        application=row[1],
        code_ref=row[2],
        status=RequestStatus(row[3]),
        failure_reason=row[4],
        error=json.loads(row[5]) if row[5] else None,
        input=bytes(row[6]),
        output=None if row[7] is None else bytes(row[7]),
        headers=json.loads(row[8]),
        run=row[9],
        strict_replay=bool(row[10]),
        progress=json.loads(row[11]) if row[11] else None,
        created_at_ms=row[12],
        started_at_ms=row[13],
        finished_at_ms=row[14],
        owner=row[15],
        attempts_failed=bool(row[16]),
    )


def attempt(row: Any) -> AttemptRecord:
    """A row of the ``list_attempts`` query."""
    return AttemptRecord(
        call_id=row[0],
        attempt=row[1],
        run=row[2],
        outcome=row[3],
        error=json.loads(row[4]) if row[4] else None,
        started_at_ms=row[5],
        finished_at_ms=row[6],
        retry_delay_s=row[7],
        code_version=row[8],
    )


def events(request_id: str, row: Any, after_seq: int) -> list[EventRecord]:
    """A row of ``list_events``: an event row, or (kind NULL) a call row that
    stands for its FunctionRunCreated and FunctionRunCompleted (those of them
    after ``after_seq``)."""
    seq = int(row[0])
    if row[1] is not None:
        return [
            EventRecord(
                request_id=request_id,
                seq=seq,
                kind=row[1],
                payload=json.loads(row[2]),
                created_at_ms=row[3],
            )
        ]
    function, call_id, parent_id, kind, attempts, started_ms, finished_ms = row[4:11]
    pair = []
    if seq > after_seq:
        pair.append(
            _events.call_created(
                request_id, function, call_id, started_ms, parent_id, kind
            )
        )
    pair.append(
        _events.call_succeeded(
            request_id, function, call_id, started_ms, finished_ms, int(attempts)
        )
    )
    first = seq + 2 - len(pair)
    return [
        EventRecord(
            request_id=request_id,
            seq=first + i,
            kind=event.kind,
            payload=event.payload,
            created_at_ms=event.created_at_ms,
        )
        for i, event in enumerate(pair)
    ]
