"""Sleeps and signal waits under kill -9: every timer and every signal is honoured
exactly once, and parked requests hold no executor."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn import _request
from cairn.store import Store
from cairn.types import CallStatus, RequestStatus

from . import wait_apps
from .conftest import Workers, assert_nothing_left_behind, wait_finished

WAIT_APPS = Path(wait_apps.__file__)


@pytest.fixture
def wait_workers(workers: Workers) -> Workers:
    workers.apps = WAIT_APPS
    return workers


def _until(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def _waiting(store: Store, ids: list[str], kind: str) -> bool:
    """Every request has a wait of ``kind`` recorded and not ended."""
    return all(any(w.kind == kind for w in store.list_waits(i)) for i in ids)


def _parked(store: Store, ids: list[str]) -> bool:
    """No call of these requests holds an executor."""
    return all(
        all(c.status is not CallStatus.RUNNING for c in store.list_calls(i))
        for i in ids
    )


def _descendants(pid: int) -> list[int]:
    """The live descendants of ``pid``; one that exits while it is read (an idle
    executor stopping) is left out, not an error."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *_descendants(int(child))]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def test_kill_9_while_sleeping_and_waiting_honours_each_timer_and_signal_once(
    wait_workers: Workers, crash_store: Store, store_url: str
):
    ids = [
        _request.submit(wait_apps.nap_then_signal, (i,), {}, store_url=store_url)
        for i in range(6)
    ]
    timeout_id = _request.submit(
        wait_apps.wait_or_time_out, (0,), {}, store_url=store_url
    )
    worker = wait_workers.start()
    _until("every request sleeps", lambda: _waiting(crash_store, ids, "sleep"))
    _until("they park", lambda: _parked(crash_store, [*ids, timeout_id]))
    worker.kill()
    worker.wait()
    # Sent while every request still sleeps and no worker runs: kept for the wait.
    for i, request_id in enumerate(ids[:3]):
        _request.Request(request_id, store_url).signal("go", i * 100)
    wait_workers.start()
    _until(
        "the rest wait for their signal",
        lambda: _waiting(crash_store, ids[3:], "signal"),
    )
    wait_finished(crash_store, timeout_id)
    for request_id in ids[:3]:
        wait_finished(crash_store, request_id)
    _until("they park", lambda: _parked(crash_store, ids[3:]))
    wait_workers.running[-1].kill()
    wait_workers.running[-1].wait()
    for i, request_id in enumerate(ids[3:], start=3):
        _request.Request(request_id, store_url).signal("go", i * 100)
    wait_workers.start()
    for request_id in ids:
        wait_finished(crash_store, request_id)

    for i, request_id in enumerate(ids):
        record = crash_store.get_request(request_id)
        assert record is not None and record.status is RequestStatus.SUCCEEDED
        assert record.output == f'"{i}:{i * 100}"'.encode()
        # The timer was honoured: three seconds at least between start and end.
        assert record.finished_at_ms is not None
        assert record.finished_at_ms - record.created_at_ms >= 3000
        assert_nothing_left_behind(crash_store, request_id)
        signals = crash_store.list_signals(request_id)
        assert len(signals) == 1 and signals[0].wait_id is not None
        assert crash_store.list_waits(request_id) == []
    counts = wait_workers.effect_counts()
    for i in range(6):
        assert counts[f"start {i}"] == 1
        assert counts[f"woke {i}"] == 1
        assert counts[f"got {i} {i * 100}"] == 1
    timed_out = crash_store.get_request(timeout_id)
    assert timed_out is not None and timed_out.output == b'"timed out"'
    assert counts["timed out 0"] == 1


def test_a_signal_sent_before_the_wait_is_delivered_and_each_goes_to_one_wait(
    wait_workers: Workers, crash_store: Store, store_url: str
):
    request_id = _request.submit(wait_apps.two_signals, (7,), {}, store_url=store_url)
    request = _request.Request(request_id, store_url)
    request.signal("n", 1)
    request.signal("n", 2)
    request.signal("n", 3)  # kept: no third wait takes it
    wait_workers.start()
    wait_finished(crash_store, request_id)
    record = crash_store.get_request(request_id)
    assert record is not None and record.output == b"[1,2]"
    signals = crash_store.list_signals(request_id)
    assert [s.wait_id is not None for s in signals] == [True, True, False]
    assert signals[0].wait_id != signals[1].wait_id


def test_a_thousand_parked_requests_hold_no_executor_and_all_resume(
    wait_workers: Workers, crash_store: Store, store_url: str
):
    ids = [
        _request.submit(wait_apps.await_signal, (i,), {}, store_url=store_url)
        for i in range(1000)
    ]
    worker = wait_workers.start(CAIRN_CONCURRENCY="2")
    _until(
        "all wait for their signal",
        lambda: _waiting(crash_store, ids, "signal"),
        timeout_s=180,
    )
    _until("they park", lambda: _parked(crash_store, ids))
    assert worker.poll() is None
    # The worker holds its two executors, not one per waiting request.
    assert len(_descendants(worker.pid)) == 2
    for i, request_id in enumerate(ids):
        _request.Request(request_id, store_url).signal("go", str(i))
    for request_id in ids:
        wait_finished(crash_store, request_id, timeout_s=180)
    for i, request_id in enumerate(ids):
        record = crash_store.get_request(request_id)
        assert record is not None and record.status is RequestStatus.SUCCEEDED
        assert record.output == str(2 * i).encode()
        assert_nothing_left_behind(crash_store, request_id)


def test_a_sleep_in_a_child_call_parks_the_request_and_each_call_runs_once(
    wait_workers: Workers, crash_store: Store, store_url: str
):
    request_id = _request.submit(
        wait_apps.sleeps_in_a_child, (1,), {}, store_url=store_url
    )
    wait_workers.start()
    _until("the child sleeps", lambda: _waiting(crash_store, [request_id], "sleep"))
    _until("it parks", lambda: _parked(crash_store, [request_id]))
    wait_workers.running[-1].kill()
    wait_workers.running[-1].wait()
    wait_workers.start()
    wait_finished(crash_store, request_id)
    record = crash_store.get_request(request_id)
    assert record is not None and record.output == b"60"
    assert_nothing_left_behind(crash_store, request_id)
    counts = wait_workers.effect_counts()
    # The inline child ran to its sleep once, and past it once, though the
    # request parked with it mid-call; each map item likewise.
    for i in (1, 2, 3):
        assert counts[f"nested before {i}"] == 1
        assert counts[f"nested after {i}"] == 1


def test_parents_waiting_on_waiting_children_park_and_resume_once(
    wait_workers: Workers, crash_store: Store, store_url: str
):
    ids = [
        _request.submit(
            wait_apps.parent_of_waiting_child, (i,), {}, store_url=store_url
        )
        for i in range(6)
    ]
    worker = wait_workers.start(CAIRN_PARK_CHILDREN_AFTER_S="1")
    _until("every child waits", lambda: _waiting(crash_store, ids, "signal"))
    _until("every parent parks", lambda: _waiting(crash_store, ids, "children"))
    _until("nothing holds an executor", lambda: _parked(crash_store, ids))
    # Six parents and six children wait; the executors started while parents
    # waited in place (for a second) stop once idle: two are left.
    _until("extra executors stop", lambda: len(_descendants(worker.pid)) == 2)
    worker.kill()
    worker.wait()
    for i, request_id in enumerate(ids):
        _request.Request(request_id, store_url).signal("go", i * 10)
    wait_workers.start(CAIRN_PARK_CHILDREN_AFTER_S="1")
    for request_id in ids:
        wait_finished(crash_store, request_id)
    counts = wait_workers.effect_counts()
    for i, request_id in enumerate(ids):
        record = crash_store.get_request(request_id)
        assert record is not None and record.status is RequestStatus.SUCCEEDED
        assert record.output == str(i * 11).encode()
        assert crash_store.list_waits(request_id) == []
        assert_nothing_left_behind(crash_store, request_id)
        assert counts[f"parent start {i}"] == 1
        assert counts[f"child start {i}"] == 1
        assert counts[f"parent end {i}"] == 1


def test_a_parent_parked_on_busy_children_resumes_when_they_end(
    wait_workers: Workers, crash_store: Store, store_url: str
):
    request_id = _request.submit(
        wait_apps.parent_of_slow_children, (3.0,), {}, store_url=store_url
    )
    wait_workers.start(CAIRN_CONCURRENCY="3", CAIRN_PARK_CHILDREN_AFTER_S="1")
    _until("the parent parks", lambda: _waiting(crash_store, [request_id], "children"))
    wait_finished(crash_store, request_id)
    record = crash_store.get_request(request_id)
    assert record is not None and record.output == b'["slow done","slow done"]'
    assert record.finished_at_ms is not None and record.started_at_ms is not None
    # Woken by the children's commits, not by its five-minute recheck.
    assert record.finished_at_ms - record.created_at_ms < 10_000
    assert crash_store.list_waits(request_id) == []
