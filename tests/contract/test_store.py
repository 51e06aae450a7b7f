"""The store contract: every backend behaves the same through the ``Store`` protocol."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest

import cairn
from cairn import _events
from cairn.store import (
    SCHEMA_VERSION,
    CallFailure,
    CallKey,
    CallSuccess,
    Event,
    NewRequest,
    RequestOutcome,
    RunningCall,
    Store,
    this_host,
)
from cairn.store._sqlbase import AfterCalls, success_params
from cairn.types import CallStatus, RequestStatus

T0 = 1_700_000_000_000.0
WORKER = "worker-a"


# -- builders ----------------------------------------------------------------------------------
def new_request(
    store: Store,
    request_id: str = "req-1",
    *,
    application: str = "app",
    created_at_ms: float = T0,
    args: bytes = b"app-args",
    headers: dict[str, str] | None = None,
) -> CallKey:
    """Create a request; return its application call's key."""
    root = CallKey(
        id=request_id,
        request_id=request_id,
        parent_id=None,
        seq=0,
        function=application,
        kind="app",
        group_id=request_id,
        dispatched=True,
    )
    store.create_request(
        NewRequest(
            id=request_id,
            application=application,
            code_ref="module@/path/app.py",
            input=b'{"args":[1],"kwargs":{}}',
            headers=headers if headers is not None else {"x-trace": "t1"},
            created_at_ms=created_at_ms,
        ),
        root,
        args,
    )
    return root


def submission(request_id: str) -> tuple[NewRequest, CallKey, bytes]:
    """A request to create with its application call, as ``create_requests`` takes."""
    root = CallKey(
        id=request_id,
        request_id=request_id,
        parent_id=None,
        seq=0,
        function="app",
        kind="app",
        group_id=request_id,
        dispatched=True,
    )
    request = NewRequest(
        id=request_id,
        application="app",
        code_ref=None,
        input=b"{}",
        headers={},
        created_at_ms=T0,
    )
    return request, root, request_id.encode()


def child(
    parent: CallKey,
    name: str,
    seq: int,
    *,
    dispatched: bool = True,
    kind: str = "call",
    group_id: str | None = None,
) -> CallKey:
    call_id = f"{parent.id}/{name}#{seq}"
    return CallKey(
        id=call_id,
        request_id=parent.request_id,
        parent_id=parent.id,
        seq=seq,
        function=name,
        kind=kind,
        group_id=group_id
        if group_id is not None
        else (call_id if dispatched else None),
        dispatched=dispatched,
    )


def event(kind: str, at_ms: float = T0, **payload: Any) -> Event:
    return Event(kind=kind, payload=payload, created_at_ms=at_ms)


def success(
    key: CallKey,
    *,
    output: bytes = b"output",
    run: int = 1,
    attempt: int = 1,
    run_attempts: int | None = None,
    started_at_ms: float = T0,
    finished_at_ms: float = T0 + 5,
    **extra: Any,
) -> CallSuccess:
    return CallSuccess(
        key=key,
        run=run,
        attempt=attempt,
        run_attempts=attempt if run_attempts is None else run_attempts,
        args=extra.pop("args", None),
        output=output,
        state_writes=extra.pop("state_writes", None),
        started_at_ms=started_at_ms,
        finished_at_ms=finished_at_ms,
        **extra,
    )


def failure(
    key: CallKey,
    *,
    final: bool,
    run: int = 1,
    attempt: int = 1,
    not_before_ms: float = 0.0,
    started_at_ms: float = T0,
    finished_at_ms: float = T0 + 5,
    message: str = "boom",
    status: CallStatus | None = None,
    **extra: Any,
) -> CallFailure:
    return CallFailure(
        key=key,
        run=run,
        attempt=attempt,
        run_attempts=attempt,
        status=status or (CallStatus.FAILED if final else CallStatus.PENDING),
        outcome="failure",
        error={"type": "ValueError", "message": message, "traceback": "tb"},
        args=extra.pop("args", None),
        started_at_ms=started_at_ms,
        finished_at_ms=finished_at_ms,
        not_before_ms=not_before_ms,
        retry_delay_s=None if final else (not_before_ms - finished_at_ms) / 1000,
        **extra,
    )


def succeeded_app(output: bytes = b'"done"') -> RequestOutcome:
    return RequestOutcome(status=RequestStatus.SUCCEEDED, output=output)


def failed_app(reason: str = "function_error") -> RequestOutcome:
    return RequestOutcome(
        status=RequestStatus.FAILED,
        failure_reason=reason,
        error={"type": "ValueError", "message": "boom"},
    )


def status_of(store: Store, call_id: str) -> CallStatus:
    record = store.get_call(call_id)
    assert record is not None, call_id
    return record.status


# -- opening ----------------------------------------------------------------------------------
def test_a_reopened_store_reports_the_schema_it_found(contract_store):
    # The SQLite files here are new; PostgreSQL's are cloned from a migrated template.
    created = contract_store.url.startswith("sqlite")
    assert contract_store.schema_before == (0 if created else SCHEMA_VERSION)
    again = contract_store.reopen()
    try:
        assert again.schema_before == SCHEMA_VERSION
    finally:
        again.close()


# -- requests ---------------------------------------------------------------------------------
def test_create_request_stores_the_request_and_a_pending_app_call(contract_store):
    root = new_request(contract_store, headers={"authorization": "x"})
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.id == "req-1"
    assert record.application == "app"
    assert record.code_ref == "module@/path/app.py"
    assert record.status is RequestStatus.PENDING
    assert record.input == b'{"args":[1],"kwargs":{}}'
    assert record.headers == {"authorization": "x"}
    assert record.run == 1
    assert record.strict_replay is False
    assert record.output is None
    assert record.failure_reason is None
    assert record.progress is None
    assert record.created_at_ms == T0
    assert record.started_at_ms is None
    assert record.finished_at_ms is None

    call = contract_store.get_call(root.id)
    assert call is not None
    assert call.status is CallStatus.PENDING
    assert call.kind == "app"
    assert call.dispatched is True
    assert call.parent_id is None
    assert call.run == 1
    assert contract_store.get_call_args(root.id) == b"app-args"
    assert contract_store.get_call_output(root.id) is None


def test_unknown_request_and_call_are_none(contract_store):
    assert contract_store.get_request("nope") is None
    assert contract_store.get_call("nope") is None
    assert contract_store.get_call_output("nope") is None
    assert contract_store.get_call_args("nope") is None
    assert contract_store.list_calls("nope") == []
    assert contract_store.list_events("nope") == []


def test_duplicate_request_id_is_refused_and_the_first_is_kept(contract_store):
    new_request(contract_store, application="first")
    with pytest.raises(cairn.CairnError, match="already exists") as error:
        new_request(contract_store, application="second", args=b"other")
    assert "req-1" in str(error.value)
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.application == "first"
    assert contract_store.get_call_args("req-1") == b"app-args"
    # The failed insert left the store usable.
    new_request(contract_store, "req-2")
    assert contract_store.get_request("req-2") is not None


def test_a_batch_of_requests_is_created_in_one_go_but_a_taken_id(contract_store):
    new_request(contract_store, "taken", application="first")
    batch = [submission(request_id) for request_id in ("b1", "taken", "b2")]
    assert contract_store.create_requests(batch) == [True, False, True]
    for request_id in ("b1", "b2"):
        assert contract_store.get_call_args(request_id) == request_id.encode()
        call = contract_store.get_call(request_id)
        assert call is not None and call.status is CallStatus.PENDING
    record = contract_store.get_request("taken")
    assert record is not None and record.application == "first"
    assert contract_store.get_call_args("taken") == b"app-args"
    assert contract_store.create_requests([]) == []


def test_list_requests_newest_first_with_filters_and_paging(contract_store):
    new_request(contract_store, "r1", application="a", created_at_ms=T0 + 1)
    new_request(contract_store, "r2", application="b", created_at_ms=T0 + 2)
    new_request(contract_store, "r3", application="a", created_at_ms=T0 + 3)
    new_request(contract_store, "r4", application="a", created_at_ms=T0 + 4)
    contract_store.finish_request("r3", failed_app(), T0 + 10)

    def ids(**kwargs: Any) -> list[str]:
        return [r.id for r in contract_store.list_requests(**kwargs)]

    assert ids() == ["r4", "r3", "r2", "r1"]
    assert ids(application="a") == ["r4", "r3", "r1"]
    assert ids(application="b") == ["r2"]
    assert ids(application="zzz") == []
    assert ids(status=RequestStatus.FAILED) == ["r3"]
    assert ids(status=RequestStatus.PENDING) == ["r4", "r2", "r1"]
    assert ids(application="a", status=RequestStatus.PENDING) == ["r4", "r1"]
    assert ids(limit=2) == ["r4", "r3"]
    assert ids(before_ms=T0 + 3) == ["r2", "r1"]

    pages: list[list[str]] = []
    before: float | None = None
    while True:
        page = contract_store.list_requests(limit=3, before_ms=before)
        if not page:
            break
        pages.append([r.id for r in page])
        before = page[-1].created_at_ms
    assert pages == [["r4", "r3", "r2"], ["r1"]]


def test_finish_request_cancel_cancels_pending_calls_once(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0)
    contract_store.enqueue_calls([(a, b"a", 0.0)], 1)
    cancelled = RequestOutcome(
        status=RequestStatus.CANCELLED, failure_reason="cancelled"
    )
    contract_store.finish_request("req-1", cancelled, T0 + 50)
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.status is RequestStatus.CANCELLED
    assert record.failure_reason == "cancelled"
    assert record.finished_at_ms == T0 + 50
    assert status_of(contract_store, a.id) is CallStatus.CANCELLED
    assert status_of(contract_store, root.id) is CallStatus.CANCELLED
    assert contract_store.claim_call(WORKER, 0, T0 + 60) is None
    # A finished request stays as it finished.
    contract_store.finish_request("req-1", failed_app(), T0 + 70)
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.status is RequestStatus.CANCELLED
    finished = [
        e for e in contract_store.list_events("req-1") if e.kind == "RequestFinished"
    ]
    assert len(finished) == 1
    assert finished[0].payload["outcome"] == {"failure": "cancelled"}


def test_delete_request_removes_it_and_everything_recorded(contract_store):
    root = new_request(contract_store)
    other = new_request(contract_store, "req-2")
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    item = child(root, "fa", 0, kind="map_item", group_id="map-a")
    contract_store.enqueue_calls([(item, None, 0.0)], 1)
    contract_store.record_failure(failure(item, final=True))
    contract_store.commit_success(success(child(root, "fb", 1), events=[event("X")]))
    contract_store.state_set(root.id, "k", b"v")
    assert contract_store.delete_request(root.id) is True
    assert contract_store.get_request(root.id) is None
    assert contract_store.list_calls(root.id) == []
    assert contract_store.list_attempts(root.id) == []
    assert contract_store.list_events(root.id) == []
    assert contract_store.state_get(root.id, "k") is None
    assert contract_store.delete_request(root.id) is False
    assert contract_store.get_request(other.id) is not None


def test_set_progress_records_latest_progress_and_its_event(contract_store):
    new_request(contract_store)
    for current in (1, 2):
        contract_store.set_progress(
            "req-1",
            {"current": current, "total": 10},
            event("RequestProgressUpdated", current=current),
        )
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.progress == {"current": 2, "total": 10}
    events = contract_store.list_events("req-1")
    assert [(e.seq, e.kind, e.payload) for e in events] == [
        (1, "RequestProgressUpdated", {"current": 1}),
        (2, "RequestProgressUpdated", {"current": 2}),
    ]


# -- enqueue ------------------------------------------------------------------------------------
def test_enqueue_makes_calls_runnable_with_args(contract_store):
    root = new_request(contract_store)
    a, b = child(root, "a", 0), child(root, "b", 1)
    contract_store.enqueue_calls([(a, b"args-a", 0.0), (b, None, T0 + 100)], 1)
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.status is CallStatus.PENDING
    assert record.dispatched is True
    assert record.parent_id == root.id
    assert record.seq == 0
    assert record.function == "a"
    assert record.group_id == a.id
    assert contract_store.get_call_args(a.id) == b"args-a"
    later = contract_store.get_call(b.id)
    assert later is not None
    assert later.not_before_ms == T0 + 100
    assert contract_store.unfinished_dispatched("req-1") == 2


def test_enqueue_of_nothing_is_a_no_op(contract_store, reopen):
    root = new_request(contract_store)
    before = contract_store.list_calls(root.id)
    other = reopen()
    token = other.change_token()
    contract_store.enqueue_calls([], 1)
    assert contract_store.list_calls(root.id) == before
    assert contract_store.unfinished_dispatched(root.id) == 0
    assert other.change_token() == token  # nothing was committed


def test_enqueue_is_idempotent_in_a_run(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0)
    contract_store.enqueue_calls([(a, b"first", 0.0)], 1)
    contract_store.enqueue_calls([(a, b"second", 0.0)], 1)
    assert len([c for c in contract_store.list_calls("req-1") if c.id == a.id]) == 1
    assert contract_store.get_call_args(a.id) == b"first"

    claimed = contract_store.claim_call(WORKER, 3, T0, call_id=a.id)
    assert claimed is not None
    contract_store.enqueue_calls([(a, b"third", 0.0)], 1)
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.status is CallStatus.RUNNING
    assert record.worker_id == WORKER
    assert record.executor == 3


def test_a_succeeded_call_is_never_reset_by_enqueue(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0)
    contract_store.enqueue_calls([(a, b"args", 0.0)], 1)
    contract_store.commit_success(success(a, output=b"kept"))
    contract_store.enqueue_calls([(a, b"new-args", 0.0)], 1)
    contract_store.enqueue_calls([(a, b"new-args", 0.0)], 2)
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.status is CallStatus.SUCCEEDED
    assert record.run == 1
    assert contract_store.get_call_output(a.id) == b"kept"
    assert contract_store.get_call_args(a.id) == b"args"


def test_a_call_failed_in_an_earlier_run_starts_afresh_in_a_new_run(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0)
    contract_store.enqueue_calls([(a, b"args", 0.0)], 1)
    contract_store.record_failure(failure(a, final=True, attempt=2))
    # Same run: the failure stands.
    contract_store.enqueue_calls([(a, b"args", 0.0)], 1)
    assert status_of(contract_store, a.id) is CallStatus.FAILED

    contract_store.enqueue_calls([(a, b"args-2", 0.0)], 2)
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.status is CallStatus.PENDING
    assert record.run == 2
    assert record.run_attempts == 0
    assert record.error is None
    assert record.attempts == 2  # attempts are counted over every run
    assert contract_store.get_call_args(a.id) == b"args-2"


# -- claim ----------------------------------------------------------------------------------------
def test_claim_any_returns_the_call_with_its_args_and_marks_it_running(contract_store):
    root = new_request(contract_store, application="my_app")
    claimed = contract_store.claim_call(WORKER, 2, T0 + 10)
    assert claimed is not None
    assert claimed.record.id == root.id
    assert claimed.record.status is CallStatus.RUNNING
    assert claimed.record.worker_id == WORKER
    assert claimed.record.executor == 2
    assert claimed.record.started_at_ms == T0 + 10
    assert claimed.args == b"app-args"
    assert claimed.request_run == 1
    assert claimed.strict_replay is False
    assert claimed.application == "my_app"
    assert status_of(contract_store, root.id) is CallStatus.RUNNING
    # Claiming the application call starts the request.
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.status is RequestStatus.RUNNING
    assert record.started_at_ms == T0 + 10
    assert contract_store.claim_call(WORKER, 3, T0 + 10) is None


def test_failed_calls_are_those_of_the_latest_run_that_failed_for_good(
    contract_store,
):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0)
    a, b, c, d, e = (child(root, name, i) for i, name in enumerate("abcde"))
    contract_store.record_failure(failure(a, final=True, finished_at_ms=T0 + 30))
    contract_store.record_failure(
        failure(b, final=True, finished_at_ms=T0 + 20, status=CallStatus.TIMED_OUT)
    )
    contract_store.record_failure(failure(c, final=False))  # to be retried
    contract_store.commit_success(success(d))
    # Failed in a run before the request's latest one: not this run's failure.
    contract_store.record_failure(failure(e, final=True, run=0))
    failed = contract_store.failed_calls(root.id)
    assert [(call.id, call.status) for call in failed] == [
        (b.id, CallStatus.TIMED_OUT),
        (a.id, CallStatus.FAILED),
    ]
    assert contract_store.failed_calls("no-such-request") == []


def test_a_request_says_whether_an_attempt_of_its_latest_run_failed(contract_store):
    # A local run reads its failed calls only when this says one may have failed.
    def attempts_failed() -> bool:
        record = contract_store.get_request(root.id)
        assert record is not None
        return record.attempts_failed

    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0)
    a, b = child(root, "a", 0), child(root, "b", 1)
    contract_store.commit_success(success(a))
    assert not attempts_failed()
    contract_store.record_failure(failure(b, final=True, run=0))  # an earlier run
    assert not attempts_failed()
    contract_store.record_failure(failure(b, final=False))  # retried, then succeeds
    assert attempts_failed()
    assert [r.attempts_failed for r in contract_store.list_requests()] == [True]


def test_claiming_an_application_call_appends_its_request_started_event(
    contract_store,
):
    root = new_request(contract_store, application="my_app")
    contract_store.claim_call(WORKER, 0, T0 + 10)
    item = child(root, "f", 0)
    contract_store.enqueue_calls([(item, None, 0.0)], 1)
    contract_store.claim_call(WORKER, 1, T0 + 20)  # not an application call
    events = contract_store.list_events("req-1")
    assert [(e.seq, e.kind, e.created_at_ms) for e in events] == [
        (1, "RequestStarted", T0 + 10)
    ]
    assert events[0].payload == {
        "request_id": "req-1",
        "application_name": "my_app",
        "run": 1,
        "created_at": _events.iso(T0 + 10),
    }


def test_claim_respects_not_before(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    a = child(root, "a", 0)
    contract_store.enqueue_calls([(a, b"a", T0 + 1000)], 1)
    assert contract_store.runnable_exists(T0 + 999) is False
    assert contract_store.claim_call(WORKER, 0, T0 + 999) is None
    assert contract_store.claim_call(WORKER, 0, T0 + 999, call_id=a.id) is None
    assert contract_store.claim_call(WORKER, 0, T0 + 999, group_id=a.id) is None
    assert contract_store.runnable_exists(T0 + 1000) is True
    claimed = contract_store.claim_call(WORKER, 0, T0 + 1000)
    assert claimed is not None
    assert claimed.record.id == a.id
    assert contract_store.runnable_exists(T0 + 5000) is False


def test_claim_any_takes_the_earliest_due_call_first(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    late, early = child(root, "late", 0), child(root, "early", 1)
    contract_store.enqueue_calls([(late, None, T0 + 20), (early, None, T0 + 10)], 1)
    first = contract_store.claim_call(WORKER, 0, T0 + 30)
    second = contract_store.claim_call(WORKER, 0, T0 + 30)
    assert first is not None
    assert second is not None
    assert [first.record.id, second.record.id] == [early.id, late.id]


def test_claim_by_group_takes_that_groups_items_in_order(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    group_a, group_b = "map-a", "map-b"
    items_a = [
        child(root, "fa", i, kind="map_item", group_id=group_a) for i in range(3)
    ]
    items_b = [
        child(root, "fb", i, kind="map_item", group_id=group_b) for i in range(2)
    ]
    contract_store.enqueue_calls([(k, None, 0.0) for k in reversed(items_a)], 1)
    contract_store.enqueue_calls([(k, None, 0.0) for k in items_b], 1)
    taken = []
    while claimed := contract_store.claim_call(WORKER, 1, T0, group_id=group_a):
        taken.append(claimed.record.id)
    assert taken == [k.id for k in items_a]
    for key in items_b:
        assert status_of(contract_store, key.id) is CallStatus.PENDING


def test_claim_group_takes_a_batch_in_item_order_and_nothing_twice(
    contract_store, reopen
):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    items = [child(root, "fa", i, kind="map_item", group_id="map-a") for i in range(7)]
    late = child(root, "fa", 7, kind="map_item", group_id="map-a")
    contract_store.enqueue_calls([(k, b"args", 0.0) for k in reversed(items)], 1)
    contract_store.enqueue_calls([(late, b"args", T0 + 60_000)], 1)
    other = reopen()
    first = contract_store.claim_group(WORKER, 1, T0, "map-a", 3)
    second = other.claim_group(WORKER, 2, T0, "map-a", 10)
    assert [c.record.id for c in first] == [k.id for k in items[:3]]
    assert [c.record.id for c in second] == [k.id for k in items[3:]]  # not `late`
    assert all(c.args == b"args" and c.request_run == 1 for c in first + second)
    assert contract_store.claim_group(WORKER, 1, T0, "map-a", 5) == []
    assert status_of(contract_store, late.id) is CallStatus.PENDING
    assert all(status_of(contract_store, k.id) is CallStatus.RUNNING for k in items)


def test_commit_successes_commits_a_batch_together(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    items = [child(root, "fa", i, kind="map_item", group_id="map-a") for i in range(3)]
    contract_store.enqueue_calls([(k, None, 0.0) for k in items], 1)
    contract_store.commit_successes(
        [success(k, output=f"out {k.seq}".encode()) for k in items]
    )
    assert [out for _, out in contract_store.group_outputs("map-a")] == [
        b"out 0",
        b"out 1",
        b"out 2",
    ]
    assert contract_store.group_counts("map-a") == {CallStatus.SUCCEEDED: 3}


def test_claim_by_id_takes_only_that_call(contract_store):
    root = new_request(contract_store)
    a, b = child(root, "a", 0), child(root, "b", 1)
    contract_store.enqueue_calls([(a, b"a", 0.0), (b, b"b", 0.0)], 1)
    claimed = contract_store.claim_call(WORKER, 0, T0, call_id=b.id)
    assert claimed is not None
    assert claimed.record.id == b.id
    assert claimed.args == b"b"
    assert status_of(contract_store, a.id) is CallStatus.PENDING
    assert status_of(contract_store, root.id) is CallStatus.PENDING
    # Not twice, and not a call that does not exist.
    assert contract_store.claim_call(WORKER, 0, T0, call_id=b.id) is None
    assert contract_store.claim_call(WORKER, 0, T0, call_id="missing") is None


def test_two_connections_never_claim_the_same_call(contract_store, reopen):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    keys = [child(root, "item", i, kind="map_item", group_id="g") for i in range(40)]
    contract_store.enqueue_calls([(k, None, 0.0) for k in keys], 1)

    stores = [reopen(), reopen()]
    barrier = threading.Barrier(len(stores))
    taken: list[list[str]] = [[] for _ in stores]
    failures: list[BaseException] = []

    def claim_all(index: int) -> None:
        try:
            barrier.wait()
            while True:
                group = "g" if index % 2 else None
                claimed = stores[index].claim_call(
                    f"worker-{index}", index, T0, group_id=group
                )
                if claimed is None:
                    return
                taken[index].append(claimed.record.id)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures
    every = taken[0] + taken[1]
    assert len(every) == len(set(every)) == len(keys)
    for index, ids in enumerate(taken):
        for call_id in ids:
            record = contract_store.get_call(call_id)
            assert record is not None
            assert record.worker_id == f"worker-{index}"


# -- commit -------------------------------------------------------------------------------------
def test_commit_success_stores_the_checkpoint(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0)
    contract_store.enqueue_calls([(a, b"args", 0.0)], 1)
    contract_store.claim_call(WORKER, 0, T0, call_id=a.id)
    contract_store.commit_success(
        success(
            a,
            output=b"\x00big\xff" * 1000,
            attempt=3,
            run_attempts=2,
            started_at_ms=T0 + 1,
            finished_at_ms=T0 + 9,
            state_writes=b"writes",
        )
    )
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.status is CallStatus.SUCCEEDED
    assert record.attempts == 3
    assert record.run_attempts == 2
    assert record.started_at_ms == T0 + 1
    assert record.finished_at_ms == T0 + 9
    assert record.error is None
    assert record.worker_id is None
    assert record.has_state_writes is True
    assert contract_store.get_call_output(a.id) == b"\x00big\xff" * 1000
    assert contract_store.get_state_writes(a.id) == b"writes"
    # The args enqueued with the call are kept when the commit carries none.
    assert contract_store.get_call_args(a.id) == b"args"
    attempts = [x for x in contract_store.list_attempts("req-1") if x.call_id == a.id]
    assert [(x.attempt, x.outcome, x.run) for x in attempts] == [(3, "success", 1)]


def test_commit_success_of_an_inline_call_creates_its_row(contract_store):
    root = new_request(contract_store)
    inline = child(root, "inline", 0, dispatched=False)
    contract_store.commit_success(success(inline, output=b"x", args=b"inline-args"))
    record = contract_store.get_call(inline.id)
    assert record is not None
    assert record.status is CallStatus.SUCCEEDED
    assert record.dispatched is False
    assert record.parent_id == root.id
    assert record.group_id is None
    assert record.has_state_writes is False
    assert contract_store.get_call_args(inline.id) == b"inline-args"
    assert contract_store.get_state_writes(inline.id) is None
    # An inline call never holds the request open.
    assert contract_store.unfinished_dispatched("req-1") == 0


def test_events_get_consecutive_sequence_numbers_per_request(contract_store):
    root = new_request(contract_store)
    other = new_request(contract_store, "req-2")
    a, b = child(root, "a", 0, dispatched=False), child(root, "b", 1, dispatched=False)
    contract_store.append_events("req-1", [event("E1"), event("E2")])
    contract_store.append_events("req-2", [event("X1")])
    contract_store.commit_success(
        success(a, events=[event("E3", n=3), event("E4", n=4)])
    )
    contract_store.record_failure(failure(b, final=False, events=[event("E5")]))
    contract_store.append_events(other.id, [event("X2")])

    events = contract_store.list_events("req-1")
    assert [(e.seq, e.kind) for e in events] == [
        (1, "E1"),
        (2, "E2"),
        (3, "E3"),
        (4, "E4"),
        (5, "E5"),
    ]
    assert events[2].payload == {"n": 3}
    assert events[0].request_id == "req-1"
    assert [(e.seq, e.kind) for e in contract_store.list_events("req-2")] == [
        (1, "X1"),
        (2, "X2"),
    ]
    assert [e.seq for e in contract_store.list_events("req-1", after_seq=3)] == [4, 5]
    assert [e.seq for e in contract_store.list_events("req-1", 1, limit=2)] == [2, 3]
    assert contract_store.list_events("req-1", after_seq=5) == []


def test_request_finishes_when_the_app_call_commits(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    inline = child(root, "inline", 0, dispatched=False)
    assert contract_store.commit_success(success(inline), read_back=True) is None
    ended = contract_store.commit_success(
        success(
            root,
            output=b'"app-out"',
            finished_at_ms=T0 + 40,
            request_outcome=succeeded_app(b'"app-out"'),
        ),
        read_back=True,
    )
    record = contract_store.get_request("req-1")
    assert record is not None
    assert ended == record  # read in the commit, as a read after it finds it
    assert record.status is RequestStatus.SUCCEEDED
    assert record.output == b'"app-out"'
    assert record.finished_at_ms == T0 + 40
    last = contract_store.list_events("req-1")[-1]
    assert last.kind == "RequestFinished"
    assert last.payload["outcome"] == "success"
    assert last.payload["output"]["body"] == "app-out"


def test_an_application_call_that_returns_after_a_cancel_keeps_its_checkpoint(
    contract_store,
):
    """The commit that would end a request finds it cancelled: the request stays
    as it ended, and the call's row and events are committed all the same."""
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    cancelled = RequestOutcome(
        status=RequestStatus.CANCELLED, failure_reason="cancelled"
    )
    contract_store.finish_request("req-1", cancelled, T0 + 10)
    ended = contract_store.commit_success(
        success(root, request_outcome=succeeded_app(), events_from_row=True),
        read_back=True,
    )
    assert ended is not None and ended.status is RequestStatus.CANCELLED
    record = contract_store.get_request("req-1")
    assert record is not None and record.status is RequestStatus.CANCELLED
    assert record.output is None
    assert status_of(contract_store, root.id) is CallStatus.SUCCEEDED
    events = contract_store.list_events("req-1")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = [e.kind for e in events]
    assert kinds.count("RequestFinished") == 1
    assert kinds[-2:] == ["FunctionRunCreated", "FunctionRunCompleted"]


@pytest.mark.parametrize("holding_it_open", ["a cancel", "a dispatched call"])
def test_the_statement_that_ends_a_request_writes_nothing_if_it_may_not(
    contract_store, holding_it_open
):
    """``end_with_checkpoint`` writes the call's row only with the request's end:
    where the request has ended or a dispatched call may still run, it writes
    nothing (the store then commits the general way)."""
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    if holding_it_open == "a cancel":
        cancelled = RequestOutcome(
            status=RequestStatus.CANCELLED, failure_reason="cancelled"
        )
        contract_store.finish_request("req-1", cancelled, T0 + 10)
    else:
        contract_store.enqueue_calls([(child(root, "a", 0), None, 0.0)], 1)
    before = contract_store.list_events("req-1")
    done = success(root, request_outcome=succeeded_app(), events_from_row=True)
    params = {
        **success_params(done, AfterCalls.of([done])),
        "request_output": b'"done"',
        "payload": "{}",
        "now_ms": T0 + 20,
    }
    assert contract_store._dialect.write_one("end_with_checkpoint", params) == []
    assert status_of(contract_store, root.id) is CallStatus.RUNNING
    assert contract_store.list_events("req-1") == before


def test_dispatched_calls_hold_the_request_open_until_the_last_finishes(
    contract_store,
):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    a, b = child(root, "a", 0), child(root, "b", 1)
    contract_store.enqueue_calls([(a, None, 0.0), (b, None, 0.0)], 1)
    ended = contract_store.commit_success(
        success(root, output=b'"app"', request_outcome=succeeded_app(b'"app"')),
        read_back=True,
    )
    assert ended is None  # not ended: its calls still run
    record = contract_store.get_request("req-1")
    assert record is not None
    assert not record.status.finished
    assert contract_store.unfinished_dispatched("req-1") == 2

    contract_store.claim_call(WORKER, 1, T0, call_id=a.id)
    contract_store.commit_success(success(a, finished_at_ms=T0 + 50))
    record = contract_store.get_request("req-1")
    assert record is not None
    assert not record.status.finished
    assert not [
        e for e in contract_store.list_events("req-1") if e.kind == "RequestFinished"
    ]

    # The last one may even fail for good: the application already returned.
    contract_store.record_failure(failure(b, final=True, finished_at_ms=T0 + 60))
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.status is RequestStatus.SUCCEEDED
    assert record.output == b'"app"'
    assert record.finished_at_ms == T0 + 60
    finished = [
        e for e in contract_store.list_events("req-1") if e.kind == "RequestFinished"
    ]
    assert len(finished) == 1


def test_served_ids_are_marked_for_their_run(contract_store):
    root = new_request(contract_store)
    a, b = child(root, "a", 0, dispatched=False), child(root, "b", 1, dispatched=False)
    contract_store.commit_success(success(a))
    contract_store.commit_success(success(b, served_ids=[a.id], served_run=1))
    assert list(contract_store.iter_served("req-1", 1)) == [a.id]
    assert list(contract_store.iter_served("req-1", 2)) == []
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.served_run == 1


# -- failure ------------------------------------------------------------------------------------
def test_a_kept_retry_goes_to_anyone_once_its_executor_did_not_come(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    a = child(root, "a", 0)
    contract_store.enqueue_calls([(a, b"args", 0.0)], 1)
    contract_store.claim_call(WORKER, 0, T0, call_id=a.id)
    contract_store.record_failure(
        failure(a, final=False, finished_at_ms=T0 + 5, not_before_ms=T0 + 10)
    )
    assert contract_store.claim_call("worker-b", 0, T0 + 1009) is None
    taken = contract_store.claim_call("worker-b", 0, T0 + 1010)
    assert taken is not None and taken.record.id == a.id


def test_retryable_failure_waits_for_its_backoff(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    a = child(root, "a", 0)
    contract_store.enqueue_calls([(a, b"args", 0.0)], 1)
    contract_store.claim_call(WORKER, 0, T0, call_id=a.id)
    contract_store.record_failure(
        failure(a, final=False, finished_at_ms=T0 + 5, not_before_ms=T0 + 2005)
    )
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.status is CallStatus.PENDING
    assert record.not_before_ms == T0 + 2005
    assert record.error is not None
    assert record.error["message"] == "boom"
    # Kept a moment for the executor that ran it, which claims it first when due
    # (its warm state is there); then anyone may.
    assert record.worker_id == WORKER
    assert contract_store.claim_call(WORKER, 0, T0 + 2004) is None
    assert contract_store.claim_call("worker-b", 0, T0 + 2005) is None
    assert contract_store.claim_call(WORKER, 1, T0 + 2005) is None
    retried = contract_store.claim_call(WORKER, 0, T0 + 2005)
    assert retried is not None
    assert retried.record.id == a.id
    assert retried.args == b"args"
    (attempt,) = [x for x in contract_store.list_attempts("req-1") if x.call_id == a.id]
    assert attempt.outcome == "failure"
    assert attempt.attempt == 1
    assert attempt.retry_delay_s == pytest.approx(2.0)
    assert attempt.error is not None
    assert attempt.error["type"] == "ValueError"
    request = contract_store.get_request("req-1")
    assert request is not None
    assert request.status is RequestStatus.RUNNING


def test_attempts_are_listed_in_order(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0, dispatched=False)
    contract_store.record_failure(
        failure(a, final=False, attempt=1, started_at_ms=T0, finished_at_ms=T0 + 1)
    )
    contract_store.record_failure(
        failure(a, final=False, attempt=2, started_at_ms=T0 + 2, finished_at_ms=T0 + 3)
    )
    contract_store.commit_success(
        success(a, attempt=3, started_at_ms=T0 + 4, finished_at_ms=T0 + 5)
    )
    attempts = [x for x in contract_store.list_attempts("req-1") if x.call_id == a.id]
    assert [(x.attempt, x.outcome) for x in attempts] == [
        (1, "failure"),
        (2, "failure"),
        (3, "success"),
    ]
    assert [x.finished_at_ms for x in attempts] == [T0 + 1, T0 + 3, T0 + 5]


def test_final_failure_is_recorded(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0, dispatched=False)
    contract_store.record_failure(
        failure(a, final=True, status=CallStatus.TIMED_OUT, message="too slow")
    )
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.status is CallStatus.TIMED_OUT
    assert record.error is not None
    assert record.error["message"] == "too slow"
    assert contract_store.get_call_output(a.id) is None
    # A final failure of a non-application call does not end the request.
    request = contract_store.get_request("req-1")
    assert request is not None
    assert request.status is RequestStatus.PENDING


def test_a_failure_never_overwrites_a_checkpoint(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0, dispatched=False)
    contract_store.commit_success(success(a, output=b"kept"))
    contract_store.record_failure(failure(a, final=True, attempt=2))
    assert status_of(contract_store, a.id) is CallStatus.SUCCEEDED
    assert contract_store.get_call_output(a.id) == b"kept"


def test_final_app_failure_fails_the_request_and_cancels_pending_calls(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    pending, done = child(root, "pending", 0), child(root, "done", 1)
    contract_store.enqueue_calls([(pending, None, 0.0), (done, None, 0.0)], 1)
    contract_store.claim_call(WORKER, 1, T0, call_id=done.id)
    contract_store.commit_success(success(done))
    contract_store.record_failure(
        failure(
            root,
            final=True,
            finished_at_ms=T0 + 30,
            request_outcome=failed_app("request_error"),
        )
    )
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.status is RequestStatus.FAILED
    assert record.failure_reason == "request_error"
    assert record.error == {"type": "ValueError", "message": "boom"}
    assert record.finished_at_ms == T0 + 30
    assert status_of(contract_store, root.id) is CallStatus.FAILED
    assert status_of(contract_store, pending.id) is CallStatus.CANCELLED
    assert status_of(contract_store, done.id) is CallStatus.SUCCEEDED
    assert contract_store.claim_call(WORKER, 0, T0 + 100) is None
    assert contract_store.unfinished_dispatched("req-1") == 0
    last = contract_store.list_events("req-1")[-1]
    assert last.kind == "RequestFinished"
    assert last.payload["outcome"] == {"failure": "request_error"}


# -- mark_running ----------------------------------------------------------------------------------
def running(key: CallKey, run: int = 1, at_ms: float = T0 + 1) -> RunningCall:
    return RunningCall(
        key=key, run=run, worker_id=WORKER, executor=4, started_at_ms=at_ms
    )


def test_mark_running_makes_an_inline_call_visible(contract_store):
    root = new_request(contract_store)
    a = child(root, "a", 0, dispatched=False)
    contract_store.mark_running([running(a, at_ms=T0 + 7)])
    record = contract_store.get_call(a.id)
    assert record is not None
    assert record.status is CallStatus.RUNNING
    assert record.worker_id == WORKER
    assert record.executor == 4
    assert record.started_at_ms == T0 + 7
    assert record.dispatched is False
    contract_store.mark_running([])


def test_mark_running_never_overwrites_a_final_status(contract_store):
    root = new_request(contract_store)
    done = child(root, "done", 0, dispatched=False)
    failed = child(root, "failed", 1, dispatched=False)
    contract_store.commit_success(success(done, output=b"kept"))
    contract_store.record_failure(failure(failed, final=True))
    contract_store.mark_running([running(done), running(failed)])
    assert status_of(contract_store, done.id) is CallStatus.SUCCEEDED
    assert status_of(contract_store, failed.id) is CallStatus.FAILED


def test_mark_running_never_overwrites_a_checkpoint_of_an_earlier_run(contract_store):
    root = new_request(contract_store)
    done = child(root, "done", 0, dispatched=False)
    contract_store.commit_success(success(done, output=b"kept"))
    contract_store.mark_running([running(done, run=2)])
    assert status_of(contract_store, done.id) is CallStatus.SUCCEEDED
    assert contract_store.get_call_output(done.id) == b"kept"


def test_mark_running_restarts_a_call_failed_in_an_earlier_run(contract_store):
    root = new_request(contract_store)
    failed = child(root, "failed", 0, dispatched=False)
    contract_store.record_failure(failure(failed, final=True))
    contract_store.mark_running([running(failed, run=2)])
    record = contract_store.get_call(failed.id)
    assert record is not None
    assert record.status is CallStatus.RUNNING
    assert record.run == 2


# -- release ---------------------------------------------------------------------------------------
def test_release_calls_of_a_dead_executor_or_worker(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call("other-worker", 0, T0, call_id=root.id)
    keys = [child(root, f"c{i}", i) for i in range(3)]
    contract_store.enqueue_calls([(k, None, 0.0) for k in keys], 1)
    for executor, key in zip((1, 2, 2), keys, strict=True):
        assert contract_store.claim_call(WORKER, executor, T0, call_id=key.id)

    released = contract_store.release_calls(WORKER, 2)
    assert sorted(r.id for r in released) == sorted([keys[1].id, keys[2].id])
    assert all(r.status is CallStatus.PENDING for r in released)
    assert all(r.worker_id is None for r in released)
    assert status_of(contract_store, keys[0].id) is CallStatus.RUNNING

    released = contract_store.release_calls(WORKER, None)
    assert [r.id for r in released] == [keys[0].id]
    assert status_of(contract_store, root.id) is CallStatus.RUNNING
    assert contract_store.release_calls(WORKER, None) == []
    # Released calls can be claimed again.
    assert contract_store.claim_call("worker-b", 0, T0, call_id=keys[1].id)


# -- replay ------------------------------------------------------------------------------------------
def _failed_request(store: Store) -> tuple[CallKey, CallKey, CallKey]:
    """A request whose app call failed after child ``ok`` succeeded and ``bad`` failed."""
    root = new_request(store)
    store.claim_call(WORKER, 0, T0, call_id=root.id)
    ok = child(root, "ok", 0, dispatched=False)
    bad = child(root, "bad", 1, dispatched=False)
    store.commit_success(success(ok, started_at_ms=T0 + 1, finished_at_ms=T0 + 2))
    store.record_failure(
        failure(bad, final=True, started_at_ms=T0 + 3, finished_at_ms=T0 + 4)
    )
    store.record_failure(
        failure(root, final=True, finished_at_ms=T0 + 5, request_outcome=failed_app())
    )
    return root, ok, bad


def test_start_replay_requeues_the_app_call_under_a_new_run(contract_store):
    root, ok, bad = _failed_request(contract_store)
    contract_store.state_set("req-1", "k", b"v")
    new_run = contract_store.start_replay(
        "req-1", from_call=None, strict=True, now_ms=T0 + 100
    )
    assert new_run == 2
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.status is RequestStatus.PENDING
    assert record.run == 2
    assert record.strict_replay is True
    assert record.failure_reason is None
    assert record.error is None
    assert record.output is None
    assert record.finished_at_ms is None

    app_call = contract_store.get_call(root.id)
    assert app_call is not None
    assert app_call.status is CallStatus.PENDING
    assert app_call.run == 2
    assert app_call.run_attempts == 0
    assert status_of(contract_store, ok.id) is CallStatus.SUCCEEDED
    assert contract_store.get_call_output(ok.id) == b"output"
    assert status_of(contract_store, bad.id) is CallStatus.STALE
    assert contract_store.state_get("req-1", "k") is None

    claimed = contract_store.claim_call(WORKER, 0, T0 + 101)
    assert claimed is not None
    assert claimed.record.id == root.id
    assert claimed.request_run == 2
    assert claimed.strict_replay is True
    assert claimed.args == b"app-args"

    # Replaying again counts on.
    contract_store.commit_success(success(root, run=2, request_outcome=succeeded_app()))
    assert (
        contract_store.start_replay(
            "req-1", from_call=None, strict=False, now_ms=T0 + 200
        )
        == 3
    )


def test_a_stale_call_is_requeued_by_the_new_run(contract_store):
    root, _ok, _bad = _failed_request(contract_store)
    dispatched = child(root, "dispatched", 2)
    contract_store.enqueue_calls([(dispatched, b"a", 0.0)], 1)
    contract_store.start_replay("req-1", from_call=None, strict=False, now_ms=T0 + 100)
    assert status_of(contract_store, dispatched.id) is CallStatus.STALE
    contract_store.enqueue_calls([(dispatched, b"a2", 0.0)], 2)
    record = contract_store.get_call(dispatched.id)
    assert record is not None
    assert record.status is CallStatus.PENDING
    assert record.run == 2


def test_replay_from_call_forces_it_later_calls_and_its_ancestors(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    first = child(root, "first", 0, dispatched=False)
    middle = child(root, "middle", 1, dispatched=False)
    inner_early = child(middle, "inner_early", 0, dispatched=False)
    inner_late = child(middle, "inner_late", 1, dispatched=False)
    last = child(root, "last", 2, dispatched=False)
    for offset, key in enumerate((first, middle, inner_early, inner_late, last)):
        contract_store.commit_success(
            success(key, started_at_ms=T0 + 10 * (offset + 1), finished_at_ms=T0 + 99)
        )
    contract_store.commit_success(
        success(root, finished_at_ms=T0 + 100, request_outcome=succeeded_app())
    )

    contract_store.start_replay(
        "req-1", from_call=inner_late.id, strict=False, now_ms=T0 + 200
    )
    statuses = {c.id: c.status for c in contract_store.list_calls("req-1")}
    assert statuses == {
        root.id: CallStatus.PENDING,
        first.id: CallStatus.SUCCEEDED,
        middle.id: CallStatus.STALE,  # an ancestor
        inner_early.id: CallStatus.SUCCEEDED,
        inner_late.id: CallStatus.STALE,  # the forced call
        last.id: CallStatus.STALE,  # started after it
    }


def test_replay_of_unknown_request_or_call_is_refused(contract_store):
    _failed_request(contract_store)
    with pytest.raises(cairn.RequestNotFound):
        contract_store.start_replay("nope", from_call=None, strict=False, now_ms=T0)
    with pytest.raises(cairn.CairnError, match="no call"):
        contract_store.start_replay(
            "req-1", from_call="missing", strict=False, now_ms=T0
        )
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.status is RequestStatus.FAILED
    assert record.run == 1


def test_replay_refuses_a_request_held_by_a_live_worker(contract_store):
    root = new_request(contract_store)
    contract_store.heartbeat(WORKER, this_host(), os.getpid(), T0)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    with pytest.raises(cairn.CairnError, match="live worker"):
        contract_store.start_replay(
            "req-1", from_call=None, strict=False, now_ms=T0 + 1
        )
    record = contract_store.get_request("req-1")
    assert record is not None
    assert record.run == 1
    assert record.status is RequestStatus.RUNNING
    assert status_of(contract_store, root.id) is CallStatus.RUNNING

    # Once its heartbeat is old, the worker is taken for dead.
    assert (
        contract_store.start_replay(
            "req-1", from_call=None, strict=False, now_ms=T0 + 60_000
        )
        == 2
    )


def test_replay_takes_over_from_a_dead_process_on_this_host(contract_store):
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    root = new_request(contract_store)
    contract_store.heartbeat("dead-worker", this_host(), process.pid, T0)
    contract_store.claim_call("dead-worker", 0, T0, call_id=root.id)
    assert (
        contract_store.start_replay(
            "req-1", from_call=None, strict=False, now_ms=T0 + 1
        )
        == 2
    )


def test_a_gone_pid_in_another_pid_namespace_is_not_a_dead_worker(contract_store):
    # Same host name, other PID namespace (a container sharing the host's name):
    # its pids mean nothing here, so only its heartbeat tells whether it lives.
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    root = new_request(contract_store)
    contract_store.heartbeat("contained", socket.gethostname(), process.pid, T0)
    contract_store.claim_call("contained", 0, T0, call_id=root.id)
    assert contract_store.release_dead_workers(T0 + 1) == 0
    with pytest.raises(cairn.CairnError, match="live worker"):
        contract_store.start_replay(
            "req-1", from_call=None, strict=False, now_ms=T0 + 1
        )
    assert status_of(contract_store, root.id) is CallStatus.RUNNING
    assert contract_store.release_dead_workers(T0 + 60_000) == 1


# -- state ------------------------------------------------------------------------------------------
def test_state_get_and_set(contract_store):
    new_request(contract_store)
    new_request(contract_store, "req-2")
    assert contract_store.state_get("req-1", "k") is None
    contract_store.state_set("req-1", "k", b"one")
    contract_store.state_set("req-1", "other", b"")
    assert contract_store.state_get("req-1", "k") == b"one"
    assert contract_store.state_get("req-1", "other") == b""
    contract_store.state_set("req-1", "k", b"two")
    assert contract_store.state_get("req-1", "k") == b"two"
    assert contract_store.state_get("req-2", "k") is None


# -- change token -----------------------------------------------------------------------------------
def test_change_token_changes_after_another_connection_commits(contract_store, reopen):
    new_request(contract_store)
    other = reopen()
    token = contract_store.change_token()
    assert contract_store.change_token() == token
    other.state_set("req-1", "k", b"v")
    changed = contract_store.change_token()
    assert changed != token
    assert contract_store.change_token() == changed
    other.append_events("req-1", [event("E")])
    assert contract_store.change_token() != changed
    # The other connection sees our writes too.
    assert other.get_request("req-1") is not None


# -- groups ----------------------------------------------------------------------------------------
def test_group_counts_and_outputs_in_item_order(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    items = [child(root, "item", i, kind="map_item", group_id="grp") for i in range(4)]
    stranger = child(root, "stranger", 9, kind="map_item", group_id="other")
    contract_store.enqueue_calls(
        [(k, None, 0.0) for k in (items[2], items[0], items[3], items[1], stranger)], 1
    )
    assert contract_store.group_counts("grp") == {CallStatus.PENDING: 4}
    contract_store.commit_success(success(items[2], output=b"two"))
    contract_store.commit_success(success(items[0], output=b"zero"))
    contract_store.record_failure(failure(items[1], final=True))
    contract_store.claim_call(WORKER, 1, T0, call_id=items[3].id)

    assert contract_store.group_counts("grp") == {
        CallStatus.SUCCEEDED: 2,
        CallStatus.FAILED: 1,
        CallStatus.RUNNING: 1,
    }
    assert list(contract_store.group_outputs("grp")) == [
        (0, b"zero"),
        (1, None),
        (2, b"two"),
        (3, None),
    ]
    assert contract_store.group_counts("empty") == {}
    assert list(contract_store.group_outputs("empty")) == []


# -- journal reads -----------------------------------------------------------------------------------
def test_list_calls_in_start_order_and_children_in_seq_order(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    b = child(root, "b", 1, dispatched=False)
    a = child(root, "a", 0, dispatched=False)
    item = child(root, "item", 2, kind="map_item", group_id="g")
    contract_store.commit_success(success(b, started_at_ms=T0 + 20))
    contract_store.commit_success(success(a, started_at_ms=T0 + 10))
    contract_store.enqueue_calls([(item, None, 0.0)], 1)
    assert [c.id for c in contract_store.list_calls("req-1")][:3] == [
        root.id,
        a.id,
        b.id,
    ]
    assert {c.id for c in contract_store.list_calls("req-1")} == {
        root.id,
        a.id,
        b.id,
        item.id,
    }
    # Map items are not the parent's own calls.
    assert [c.id for c in contract_store.list_children("req-1", root.id)] == [
        a.id,
        b.id,
    ]
    assert contract_store.list_children("req-1", a.id) == []


def test_recorded_children_page_in_seq_order_with_succeeded_outputs(contract_store):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    calls = [child(root, f"c{seq}", seq, dispatched=False) for seq in range(6)]
    for seq in (0, 1, 3, 5):
        contract_store.commit_success(success(calls[seq], output=b"out%d" % seq))
    contract_store.record_failure(failure(calls[4], final=True))
    future = child(root, "future", 6)  # dispatched: not served by position
    contract_store.enqueue_calls([(future, None, 0.0)], 1)

    page = contract_store.list_recorded_children(root.request_id, root.id, 1, 3)
    assert [(r.id, r.seq, r.status, r.output) for r in page] == [
        (calls[1].id, 1, CallStatus.SUCCEEDED, b"out1"),
        (calls[3].id, 3, CallStatus.SUCCEEDED, b"out3"),
        (calls[4].id, 4, CallStatus.FAILED, None),
    ]
    assert not any(r.has_state_writes for r in page)
    rest = contract_store.list_recorded_children(root.request_id, root.id, 5, 100)
    assert [r.id for r in rest] == [calls[5].id]
    assert contract_store.list_recorded_children(root.request_id, root.id, 7, 100) == []
    assert (
        contract_store.list_recorded_children(root.request_id, calls[0].id, 0, 100)
        == []
    )


def test_recorded_children_carry_the_arguments_of_succeeded_calls(contract_store):
    # A replay compares them with the arguments the code passes now.
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    done, failed = (child(root, f"c{seq}", seq, dispatched=False) for seq in (0, 1))
    contract_store.commit_success(success(done, args=b"done args"))
    contract_store.record_failure(failure(failed, final=True))
    page = contract_store.list_recorded_children(root.request_id, root.id, 0, 10)
    assert [(r.id, r.args) for r in page] == [
        (done.id, b"done args"),
        (failed.id, None),
    ]


def test_a_checkpoint_whose_arguments_changed_is_invalidated_and_runs_again(
    contract_store,
):
    root = new_request(contract_store)
    contract_store.claim_call(WORKER, 0, T0, call_id=root.id)
    items = [
        child(root, f"i{seq}", seq, kind="map_item", group_id="g") for seq in (0, 1)
    ]
    contract_store.enqueue_calls([(item, b"old", 0.0) for item in items], 1)
    for item in items:
        contract_store.claim_call(WORKER, 0, T0, call_id=item.id)
        contract_store.commit_success(success(item, args=None))
    assert contract_store.succeeded_args_in_group("g") == {
        items[0].id: b"old",
        items[1].id: b"old",
    }
    contract_store.invalidate_checkpoints([items[1].id])
    assert contract_store.get_call(items[1].id).status is CallStatus.STALE
    contract_store.enqueue_calls([(item, b"new", 0.0) for item in items], 2)
    assert contract_store.succeeded_args_in_group("g") == {items[0].id: b"old"}
    assert contract_store.get_call(items[1].id).status is CallStatus.PENDING
    assert contract_store.get_call_args(items[1].id) == b"new"
