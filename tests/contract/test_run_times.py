"""A request records its latest run's real start and end: the first claim of its
application call in that run, and the run's end (a commit, a failure, a cancel).
A replay starts the clock again; the application call's own times are only its
latest execution's (a re-run after a child's timeout stopped it)."""

from __future__ import annotations

from cairn import _text
from cairn.store import RequestOutcome, RequestRecord, Store
from cairn.types import RequestStatus
from tests.contract.test_store import (
    T0,
    WORKER,
    failed_app,
    failure,
    new_request,
    succeeded_app,
    success,
)


def _times(store: Store) -> tuple[float | None, float | None]:
    record = store.get_request("req-1")
    assert record is not None
    return record.started_at_ms, record.finished_at_ms


def test_a_run_starts_at_its_first_claim_and_ends_with_the_request(contract_store):
    root = new_request(contract_store)
    assert _times(contract_store) == (None, None)
    assert contract_store.claim_call(WORKER, 0, T0 + 1_000) is not None
    # Stopped and released (a child timed out), then claimed again: still the
    # run's first start.
    contract_store.release_calls(WORKER, 0)
    assert contract_store.claim_call(WORKER, 0, T0 + 3_000) is not None
    contract_store.record_failure(
        failure(
            root,
            final=True,
            started_at_ms=T0 + 3_000,
            finished_at_ms=T0 + 4_100,
            request_outcome=failed_app(),
        )
    )
    assert _times(contract_store) == (T0 + 1_000, T0 + 4_100)
    record = contract_store.get_request("req-1")
    assert record is not None
    assert _text.run_duration_s(record, now_ms=T0 + 99_000) == 3.1


def test_a_replay_starts_the_clock_again(contract_store):
    root = new_request(contract_store)
    assert contract_store.claim_call(WORKER, 0, T0 + 1_000) is not None
    contract_store.record_failure(
        failure(
            root, final=True, finished_at_ms=T0 + 2_000, request_outcome=failed_app()
        )
    )
    contract_store.start_replay(
        "req-1", from_call=None, strict=False, now_ms=T0 + 9_000
    )
    assert _times(contract_store) == (None, None)
    assert contract_store.claim_call(WORKER, 0, T0 + 10_000) is not None
    running = contract_store.get_request("req-1")
    assert running is not None
    assert _text.run_duration_s(running, now_ms=T0 + 10_500) == 0.5
    contract_store.commit_success(
        success(
            root,
            run=2,
            attempt=2,
            started_at_ms=T0 + 10_000,
            finished_at_ms=T0 + 10_700,
            request_outcome=succeeded_app(),
        )
    )
    assert _times(contract_store) == (T0 + 10_000, T0 + 10_700)


def _cancel(store: Store, at_ms: float) -> RequestRecord:
    store.finish_request(
        "req-1",
        RequestOutcome(status=RequestStatus.CANCELLED, failure_reason="cancelled"),
        at_ms,
    )
    record = store.get_request("req-1")
    assert record is not None
    return record


def test_a_cancel_ends_the_run_and_its_duration(contract_store):
    new_request(contract_store)
    assert contract_store.claim_call(WORKER, 0, T0 + 1_000) is not None
    record = _cancel(contract_store, T0 + 8_480)
    assert (record.started_at_ms, record.finished_at_ms) == (T0 + 1_000, T0 + 8_480)
    # Minutes later, still the same.
    assert _text.run_duration_s(record, now_ms=T0 + 600_000) == 7.48


def test_a_request_cancelled_before_it_started_has_no_duration(contract_store):
    new_request(contract_store)
    record = _cancel(contract_store, T0 + 500)
    assert _text.run_duration_s(record, now_ms=T0 + 600_000) is None
