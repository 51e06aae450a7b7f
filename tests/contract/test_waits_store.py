"""The store's waits and signals, on every backend: a wait recorded once, each
signal delivered to one wait, a signal kept for a wait to come, parking that
sees a signal already sent, and refusals naming the problem."""

from __future__ import annotations

import pytest

import cairn
from cairn.store import NEVER_MS, Park, RequestOutcome, Store
from cairn.types import CallStatus, RequestStatus

from .test_store import T0, WORKER, new_request


def _claim(store: Store, now_ms: float = T0) -> str:
    claimed = store.claim_call(WORKER, 0, now_ms)
    assert claimed is not None
    return claimed.record.id


def test_a_wait_is_recorded_once(contract_store: Store):
    new_request(contract_store)
    first = contract_store.begin_wait(
        "w1", "req-1", kind="sleep", name=None, due_at_ms=T0 + 5000, now_ms=T0
    )
    again = contract_store.begin_wait(
        "w1", "req-1", kind="sleep", name=None, due_at_ms=T0 + 9999, now_ms=T0 + 1
    )
    assert first == again and again.due_at_ms == T0 + 5000
    assert [w.id for w in contract_store.list_waits("req-1")] == ["w1"]
    contract_store.finish_wait("w1", T0 + 5000)
    assert contract_store.list_waits("req-1") == []


def test_each_signal_goes_to_one_wait_in_order(contract_store: Store):
    new_request(contract_store)
    for wait_id in ("a", "b", "c"):
        contract_store.begin_wait(
            wait_id, "req-1", kind="signal", name="n", due_at_ms=T0 + 10, now_ms=T0
        )
    assert contract_store.send_signal("req-1", "n", b"1", "json", T0) == 1
    assert contract_store.send_signal("req-1", "n", b"2", "json", T0) == 2
    assert contract_store.take_signal("b", "req-1", "n", T0).value == b"1"
    assert contract_store.take_signal("a", "req-1", "n", T0).value == b"2"
    # Delivered once: asking again answers the same value.
    assert contract_store.take_signal("b", "req-1", "n", T0 + 1).value == b"1"
    nothing = contract_store.take_signal("c", "req-1", "n", T0)
    assert nothing.status == "waiting"
    timed_out = contract_store.take_signal("c", "req-1", "n", T0 + 10)
    assert timed_out.status == "timed_out"
    # A signal sent after the timeout stays for a later wait.
    contract_store.send_signal("req-1", "n", b"3", "json", T0 + 20)
    assert contract_store.take_signal("c", "req-1", "n", T0 + 30).status == "timed_out"
    taken = [s.wait_id for s in contract_store.list_signals("req-1")]
    assert taken == ["b", "a", None]


def test_parking_sees_a_signal_sent_before_it_and_a_signal_wakes_a_parked_call(
    contract_store: Store,
):
    new_request(contract_store, "early")
    new_request(contract_store, "late")
    for request_id in ("early", "late"):
        assert _claim(contract_store) in ("early", "late")
        contract_store.begin_wait(
            f"w-{request_id}",
            request_id,
            kind="signal",
            name="go",
            due_at_ms=None,
            now_ms=T0,
        )
    contract_store.send_signal("early", "go", b"true", "json", T0)
    for request_id in ("early", "late"):
        contract_store.park_call(
            Park(
                request_id=request_id,
                call_id=request_id,
                wait_id=f"w-{request_id}",
                not_before_ms=NEVER_MS,
            )
        )
    early, late = contract_store.get_call("early"), contract_store.get_call("late")
    assert early is not None and late is not None
    assert early.status is CallStatus.PENDING and early.worker_id is None
    assert early.not_before_ms <= T0  # its signal was there: due at once
    assert late.not_before_ms == NEVER_MS
    assert contract_store.parked_on_wait("late")
    # Parked calls are not queued for an executor (/metrics's calls waiting).
    assert contract_store.pending_by_function() == {}
    contract_store.send_signal("late", "go", b"1", "json", T0 + 50)
    woken = contract_store.get_call("late")
    assert woken is not None and woken.not_before_ms == T0 + 50


def test_signals_to_unknown_or_finished_requests_are_refused(contract_store: Store):
    with pytest.raises(cairn.RequestNotFound, match="no request with id 'nope'"):
        contract_store.send_signal("nope", "go", b"1", "json", T0)
    new_request(contract_store)
    contract_store.finish_request(
        "req-1", RequestOutcome(status=RequestStatus.SUCCEEDED, output=b"1"), T0
    )
    with pytest.raises(cairn.RequestFinished, match="has succeeded"):
        contract_store.send_signal("req-1", "go", b"1", "json", T0)
