"""A checkpoint's FunctionRunCreated and FunctionRunCompleted, read from its call
row (``calls.event_seq``): the same stream, number for number and byte for byte,
as when they were rows of ``events``; rows again once the call row changes."""

from __future__ import annotations

import json
import random
import sqlite3
from typing import Any

import psycopg

from cairn import _events
from cairn.store import CallKey, Store
from cairn.store._records import EventRecord
from tests.contract.test_store import (
    T0,
    WORKER,
    child,
    event,
    failure,
    new_request,
    succeeded_app,
    success,
)


def event_rows(store: Store) -> int:
    """How many rows the events table holds."""
    if store.url.startswith("sqlite"):
        conn = sqlite3.connect(store.url.removeprefix("sqlite:///").split("?")[0])
        try:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            conn.close()
    with psycopg.connect(store.url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0


def from_row(key: CallKey, **extra: Any):
    return success(key, events_from_row=True, **extra)


def written(
    key: CallKey, started_at_ms: float, finished_at_ms: float, attempt: int = 1
) -> list[tuple[str, bytes, float]]:
    """The pair as the executor wrote it before (_events.function_run by hand)."""
    pair = [
        _events.function_run(
            "FunctionRunCreated",
            key.request_id,
            key.function,
            key.id,
            started_at_ms,
            parent_function_run_id=key.parent_id,
            call_kind=key.kind,
        ),
        _events.function_run(
            "FunctionRunCompleted",
            key.request_id,
            key.function,
            key.id,
            finished_at_ms,
            outcome="success",
            attempt=attempt,
            duration_ms=round(finished_at_ms - started_at_ms, 3),
        ),
    ]
    # Stored as JSON and read back: what every reader saw.
    return [
        (
            e.kind,
            json.dumps(json.loads(json.dumps(e.payload))).encode(),
            e.created_at_ms,
        )
        for e in pair
    ]


def as_bytes(events: list[EventRecord]) -> list[tuple[int, str, bytes, float]]:
    return [
        (e.seq, e.kind, json.dumps(e.payload).encode(), e.created_at_ms) for e in events
    ]


def test_a_first_attempt_success_writes_no_event_row(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0, dispatched=False)
    before = event_rows(contract_store)
    contract_store.commit_success(
        from_row(a, started_at_ms=T0 + 0.125, finished_at_ms=T0 + 5.0625)
    )
    assert event_rows(contract_store) == before
    got = as_bytes(contract_store.list_events("req-1"))
    expected = written(a, T0 + 0.125, T0 + 5.0625)
    assert got == [(n + 1, *e) for n, e in enumerate(expected)]


def test_numbers_are_dense_and_in_commit_order(contract_store):
    root = new_request(contract_store)
    a, b, c, d = (child(root, n, i, dispatched=False) for i, n in enumerate("abcd"))
    contract_store.append_events("req-1", [event("E1")])
    contract_store.commit_success(from_row(a))
    contract_store.record_failure(failure(b, final=False, events=[event("B1")]))
    contract_store.commit_successes(
        [from_row(c), success(d, events=[event("D1"), event("D2")])]
    )
    contract_store.append_events("req-1", [event("E2")])
    events = contract_store.list_events("req-1")
    assert [(e.seq, e.kind, e.payload.get("function_run_id")) for e in events] == [
        (1, "E1", None),
        (2, "FunctionRunCreated", a.id),
        (3, "FunctionRunCompleted", a.id),
        (4, "B1", None),
        (5, "FunctionRunCreated", c.id),
        (6, "FunctionRunCompleted", c.id),
        (7, "D1", None),
        (8, "D2", None),
        (9, "E2", None),
    ]
    # Every page of the stream, from every number, is the stream's slice.
    for after in range(10):
        for limit in (1, 2, 3, 10):
            page = contract_store.list_events("req-1", after, limit=limit)
            assert page == events[after : after + limit]


def _call_times(rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Wall-clock times in milliseconds as time.time() * 1000 gives them, with
    durations that sit on rounding's half-way points (0.0625 ms: 62.5 us)."""
    base = 1_764_777_602_123.0
    times = []
    for i in range(n):
        started = base + rng.randrange(0, 1 << 30) / 4096
        duration = rng.choice(
            [0.0625, 0.1875, 5.0, 0.0, 0.000244140625, rng.randrange(1 << 24) / 4096]
        )
        times.append((started, started + duration if i % 7 else started))
    return times


def test_kept_events_are_the_ones_read_from_rows(contract_store):
    root = new_request(contract_store)
    keys = [child(root, f"c{i}", i, dispatched=False) for i in range(120)]
    times = _call_times(random.Random(8), len(keys))
    contract_store.commit_successes(
        [
            from_row(k, started_at_ms=s, finished_at_ms=f, attempt=1 + i % 3)
            for i, (k, (s, f)) in enumerate(zip(keys, times, strict=True))
        ]
    )
    derived = contract_store.list_events("req-1", limit=10_000)
    assert event_rows(contract_store) == 0
    expected = [
        e
        for i, (k, (s, f)) in enumerate(zip(keys, times, strict=True))
        for e in written(k, s, f, attempt=1 + i % 3)
    ]
    assert [x[1:] for x in as_bytes(derived)] == expected

    # Their rows change (checkpoints invalidated): the events become rows, the same.
    contract_store.invalidate_checkpoints([k.id for k in keys])
    assert event_rows(contract_store) == 2 * len(keys)
    assert as_bytes(contract_store.list_events("req-1", limit=10_000)) == as_bytes(
        derived
    )


def test_a_replay_keeps_the_events_of_the_calls_it_runs_again(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    a = child(root, "a", 0, dispatched=False)
    contract_store.commit_success(
        from_row(a, started_at_ms=T0 + 1, finished_at_ms=T0 + 2)
    )
    contract_store.commit_success(
        from_row(
            root,
            started_at_ms=T0,
            finished_at_ms=T0 + 3,
            request_outcome=succeeded_app(),
        )
    )
    run_1 = as_bytes(contract_store.list_events("req-1"))
    contract_store.start_replay("req-1", from_call=a.id, strict=False, now_ms=T0 + 10)
    assert as_bytes(contract_store.list_events("req-1")) == run_1

    contract_store.claim_call(WORKER, 0, T0 + 11, call_id=root.id)
    contract_store.commit_success(
        from_row(a, run=2, attempt=2, started_at_ms=T0 + 12, finished_at_ms=T0 + 13)
    )
    events = as_bytes(contract_store.list_events("req-1"))
    assert events[: len(run_1)] == run_1
    assert [seq for seq, *_ in events] == list(range(1, len(events) + 1))
    assert [x[1:] for x in events[-2:]] == written(a, T0 + 12, T0 + 13, attempt=2)


def test_a_call_committed_twice_keeps_its_first_events(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0, dispatched=False)
    contract_store.commit_success(
        from_row(a, started_at_ms=T0 + 1, finished_at_ms=T0 + 2)
    )
    contract_store.commit_success(
        from_row(a, started_at_ms=T0 + 3, finished_at_ms=T0 + 4.5)
    )
    events = as_bytes(contract_store.list_events("req-1"))
    assert [(seq, *x) for seq, *x in events] == [
        (n + 1, *e)
        for n, e in enumerate(written(a, T0 + 1, T0 + 2) + written(a, T0 + 3, T0 + 4.5))
    ]
    assert event_rows(contract_store) == 2


def test_deleting_a_request_removes_its_call_events(contract_store):
    root = new_request(contract_store)
    contract_store.commit_success(from_row(child(root, "a", 0, dispatched=False)))
    assert contract_store.delete_request("req-1")
    assert contract_store.list_events("req-1") == []


def test_last_event_seq_is_the_number_of_the_latest_event(contract_store):
    assert contract_store.last_event_seq("no-such-request") == 0
    root = new_request(contract_store)
    assert contract_store.last_event_seq("req-1") == 0
    contract_store.claim_call(WORKER, 0, T0 + 1)  # RequestStarted
    for i in range(3):  # each commit numbers a derived pair
        key = child(root, "f", i)
        contract_store.commit_success(from_row(key))
    events = contract_store.list_events("req-1")
    assert [e.seq for e in events] == list(range(1, 8))
    assert contract_store.last_event_seq("req-1") == 7
