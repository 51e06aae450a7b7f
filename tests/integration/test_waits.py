"""Durable sleep and signals on a local engine: timers, replays, values, status,
and bad input refused with a clear message."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import cairn
from cairn import RequestContext, _request, _request_ops, application, function, worker
from cairn.store import RequestRecord, Store
from cairn.types import RequestStatus


@application()
@function()
def nap(seconds: float) -> str:
    RequestContext.get().sleep(seconds)
    return "rested"


@application()
@function()
def approval(amount: int) -> dict[str, Any]:
    try:
        decision = cairn.wait_for_signal("approval", timeout_s=20)
    except TimeoutError as error:
        return {"amount": amount, "timed_out": str(error)}
    return {"amount": amount, "decision": decision}


@application()
@function()
def short_wait(timeout_s: float) -> str:
    try:
        cairn.wait_for_signal("nobody sends it", timeout_s=timeout_s)
    except TimeoutError as error:
        return str(error)
    return "signalled"


@application()
@function()
def pickled(_: int) -> str:
    value = cairn.wait_for_signal("thing")
    return repr(sorted(value))


def _in_background(
    store_url: str, app: Any, *args: Any
) -> tuple[str, threading.Thread, list[RequestRecord]]:
    """Submit a request and run it to its end in a thread of this process."""
    request_id = _request.submit(
        app, args, {}, store_url=store_url, owner=worker.local_owner(store_url)
    )
    done: list[RequestRecord] = []
    thread = threading.Thread(
        target=lambda: done.append(worker.run_here(request_id, store_url))
    )
    thread.start()
    return request_id, thread, done


def _until(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_sleep_sleeps_and_a_replay_does_not_sleep_again(run):
    # The store made and the engine's executors started before the clock runs:
    # on a loaded machine those alone can take a second.
    assert run(nap, 0).output() == "rested"
    started = time.monotonic()
    request = run(nap, 1.5)  # parks: longer than a second
    # It wakes on time (a generous bound: the timer fires within milliseconds
    # on an idle worker; bench/parked.py measures resumes).
    assert 1.5 <= time.monotonic() - started < 3.0
    assert request.output() == "rested"
    started = time.monotonic()
    request.replay()
    assert time.monotonic() - started < 1.0
    assert request.output() == "rested"


def test_a_short_sleep_waits_in_place(run):
    started = time.monotonic()
    assert run(nap, 0.3).output() == "rested"
    assert time.monotonic() - started >= 0.3


def test_a_negative_sleep_fails_with_a_clear_message(run, store: Store):
    request = run(nap, -1)
    record = store.get_request(request.id)
    assert record is not None and record.status is RequestStatus.FAILED
    call = store.get_call(request.id)
    assert call is not None and call.error is not None
    assert "sleep must be a finite number of seconds >= 0, got -1" in str(
        call.error["message"]
    )


def test_a_signal_is_delivered_and_the_status_says_what_the_request_waits_for(
    store_url: str, store: Store
):
    request_id, thread, done = _in_background(store_url, approval, 120)

    def status() -> str | None:
        record = store.get_request(request_id)
        assert record is not None
        return _request_ops.waiting_for(store, record)

    text = _until(status)
    assert text.startswith("waiting: signal 'approval' until ")
    _request.Request(request_id, store_url).signal("approval", {"ok": True})
    thread.join(30)
    assert done[0].status is RequestStatus.SUCCEEDED
    assert cairn.get_request(request_id, store=store_url).output() == {
        "amount": 120,
        "decision": {"ok": True},
    }


def test_a_sleeping_request_says_until_when(store_url: str, store: Store):
    request_id, thread, _ = _in_background(store_url, nap, 1.5)
    record = _until(lambda: store.get_request(request_id))
    text = _until(lambda: _request_ops.waiting_for(store, record))
    assert text.startswith("sleeping until 20")
    thread.join(30)


def test_a_timeout_raises_a_catchable_timeout_error(run):
    assert (
        run(short_wait, 0.2).output() == "no signal 'nobody sends it' came within 0.2s"
    )


def test_a_value_that_is_not_json_is_pickled(store_url: str):
    request_id, thread, _ = _in_background(store_url, pickled, 0)
    _request.Request(request_id, store_url).signal("thing", {3, 1, 2})
    thread.join(30)
    assert cairn.get_request(request_id, store=store_url).output() == "[1, 2, 3]"


def test_signals_to_unknown_or_finished_requests_are_refused(run, store_url: str):
    with pytest.raises(cairn.RequestNotFound, match="no request with id 'nope'"):
        _request.Request("nope", store_url).signal("approval", 1)
    finished = run(nap, 0)
    with pytest.raises(cairn.RequestFinished, match="has succeeded"):
        finished.signal("approval", 1)
    with pytest.raises(cairn.SDKUsageError, match="signal name"):
        finished.signal("", 1)


def test_sleep_outside_a_request_is_a_usage_error():
    with pytest.raises(cairn.SDKUsageError, match="inside a request"):
        cairn.sleep(1)


@function()
def slow_echo(value: str, seconds: float) -> str:
    time.sleep(seconds)
    return value


@function()
def pause_here(seconds: float) -> None:
    time.sleep(seconds)


@application()
@function()
def times_its_wait(seconds: float) -> float:
    future = slow_echo.future("x", seconds).run()
    pause_here(0.3)  # another executor takes the child meanwhile
    started = time.monotonic()
    assert future.result() == "x"
    return time.monotonic() - started


def test_a_short_wait_on_children_does_not_park(run):
    # Its code runs once: a caller that parked would time its wait from its
    # resume (Tensorlake's own tests time such waits).
    waited_s = run(times_its_wait, 2.0).output()
    assert 1.4 <= waited_s < 10.0
