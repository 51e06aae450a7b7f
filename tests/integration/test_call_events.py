"""The FunctionRunCreated/FunctionRunCompleted a run writes, read back: the events
Tensorlake's stream had when each was a row, byte for byte, through a replay."""

from __future__ import annotations

import json

import cairn
from cairn import RequestContext, _events, application, function
from cairn.store import CallRecord, EventRecord


def _by_hand(call: CallRecord, request_id: str) -> list[tuple[str, str]]:
    """A succeeded call's pair as the executor built it (_events.function_run)."""
    assert call.started_at_ms is not None and call.finished_at_ms is not None
    pair = [
        _events.function_run(
            "FunctionRunCreated",
            request_id,
            call.function,
            call.id,
            call.started_at_ms,
            parent_function_run_id=call.parent_id,
            call_kind=call.kind,
        ),
        _events.function_run(
            "FunctionRunCompleted",
            request_id,
            call.function,
            call.id,
            call.finished_at_ms,
            outcome="success",
            attempt=call.attempts,
            duration_ms=round(call.finished_at_ms - call.started_at_ms, 3),
        ),
    ]
    return [(e.kind, json.dumps(json.loads(json.dumps(e.payload)))) for e in pair]


def _pairs(events: list[EventRecord], call_id: str) -> list[tuple[str, str]]:
    return [
        (e.kind, json.dumps(e.payload))
        for e in events
        if e.payload.get("function_run_id") == call_id
        and e.kind in ("FunctionRunCreated", "FunctionRunCompleted")
    ]


def test_call_events_read_from_rows_are_the_ones_written_before(run, store):
    @function(retries=cairn.Retries(max_retries=1, initial_delay=0.01))
    def flaky_step(i: int) -> int:
        if i == 1 and not RequestContext.get().state.get("failed_once"):
            RequestContext.get().state.set("failed_once", True)
            raise ValueError("once")
        return i

    @function()
    def plain_step(i: int) -> int:
        return i * 10

    @application()
    @function()
    def stepped() -> int:
        return plain_step(1) + flaky_step(1) + sum(plain_step.map([2, 3]))

    request = run(stepped)
    assert request.output() == 61
    events = store.list_events(request.id, limit=10_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    calls = store.list_calls(request.id)
    flaky = [c for c in calls if c.function.endswith("flaky_step")]
    for call in calls:
        if call in flaky:
            continue  # created with its failed attempt: rows, as before
        assert _pairs(events, call.id) == _by_hand(call, request.id), call.function

    run_1 = [(e.seq, e.kind, json.dumps(e.payload)) for e in events]
    new_run = store.start_replay(
        request.id, from_call=None, strict=False, now_ms=events[-1].created_at_ms
    )
    assert new_run == 2
    kept = store.list_events(request.id, limit=10_000)
    assert [(e.seq, e.kind, json.dumps(e.payload)) for e in kept] == run_1
