"""``create_claimed``: the local engine creates its own request with the
application call already claimed by one of its executors (the hand-off)."""

from __future__ import annotations

import dataclasses

import pytest

from cairn import _events
from cairn.store import RequestExists
from cairn.types import CallStatus, RequestStatus

from .test_store import T0, WORKER, submission


def test_the_request_is_created_running_with_its_call_claimed(contract_store):
    request, root, args = submission("req-1")
    request = dataclasses.replace(request, owner=WORKER)
    claimed = contract_store.create_claimed(request, root, args, WORKER, 3, T0 + 5)
    assert claimed.fresh
    assert claimed.args == args
    assert claimed.request_run == 1
    assert claimed.application == "app"
    assert claimed.record.id == root.id
    assert claimed.record.status is CallStatus.RUNNING
    assert (claimed.record.worker_id, claimed.record.executor) == (WORKER, 3)
    stored = contract_store.get_call(root.id)
    assert stored is not None and stored.status is CallStatus.RUNNING
    assert (stored.worker_id, stored.executor) == (WORKER, 3)
    record = contract_store.get_request("req-1")
    assert record is not None and record.status is RequestStatus.RUNNING
    events = contract_store.list_events("req-1")
    assert [(e.seq, e.kind, e.payload) for e in events] == [
        (
            1,
            "RequestStarted",
            {
                "request_id": "req-1",
                "application_name": "app",
                "run": 1,
                "created_at": _events.iso(T0 + 5),
            },
        )
    ]
    # Nobody else can claim it: it is running.
    assert contract_store.claim_call("other", 0, T0 + 10) is None


def test_a_taken_id_is_refused_and_nothing_is_written(contract_store):
    contract_store.create_requests([submission("req-1")])
    before = contract_store.list_events("req-1")
    with pytest.raises(RequestExists, match="req-1"):
        contract_store.create_claimed(*submission("req-1"), WORKER, 0, T0)
    call = contract_store.get_call("req-1")
    assert call is not None and call.status is CallStatus.PENDING
    assert contract_store.list_events("req-1") == before


def test_a_handed_off_call_of_a_dead_executor_is_released_to_pending(contract_store):
    contract_store.create_claimed(*submission("req-1"), WORKER, 2, T0)
    released = contract_store.release_calls(WORKER, 2)
    assert [call.id for call in released] == ["req-1"]
    claimed = contract_store.claim_call(WORKER, 0, T0 + 1)
    assert claimed is not None and claimed.record.id == "req-1"
    assert not claimed.fresh  # claimed from the queue: it may have run before
