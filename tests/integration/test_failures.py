"""Retries with backoff, catchable child failures, timeouts that stop code."""

from __future__ import annotations

import itertools
import time

import pytest

import cairn
from cairn import RequestContext, Retries, application, function
from cairn.types import CallStatus, RequestStatus


def test_retries_back_off_exponentially_and_record_each_delay(run, effects):
    @function(retries=Retries(max_retries=3, initial_delay=0.2, delay_multiplier=2.0))
    def flaky() -> str:
        effects.record(f"{time.monotonic()}")
        if len(effects.lines()) < 4:
            raise TimeoutError("rate limited")
        return "ok"

    @application()
    @function()
    def retrying() -> str:
        return flaky()

    request = run(retrying)
    assert request.output() == "ok"
    starts = [float(line) for line in effects.lines()]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Equal jitter: each delay is between half and all of 0.2, 0.4, 0.8 seconds.
    for gap, base in zip(gaps, (0.2, 0.4, 0.8), strict=True):
        assert base / 2 <= gap < base + 1.0
    call = next(c for c in request.calls() if c.function.endswith("flaky"))
    assert [a.outcome for a in call.attempts] == [
        "failure",
        "failure",
        "failure",
        "success",
    ]
    delays = [a.retry_delay_s for a in call.attempts[:3]]
    assert all(d is not None for d in delays)
    assert all(
        base / 2 <= d <= base for d, base in zip(delays, (0.2, 0.4, 0.8), strict=True)
    ), delays
    assert call.attempts[0].error["type"] == "TimeoutError"


def test_int_retries_and_app_level_retries_are_inherited(run, effects):
    @function()
    def inherits() -> int:
        effects.record("try")
        if len(effects.lines()) < 3:
            raise ValueError("not yet")
        return 3

    @application(retries=Retries(max_retries=2, initial_delay=0.01))
    @function()
    def parent_with_policy() -> int:
        return inherits()

    assert run(parent_with_policy).output() == 3
    assert effects.count("try") == 3


def test_request_error_is_never_retried_and_fails_the_request_verbatim(run, effects):
    @function(retries=5)
    def refuse(amount: int) -> int:
        effects.record("refuse")
        raise cairn.RequestError(f"amount {amount} exceeds the limit")

    @application()
    @function()
    def payment(amount: int) -> int:
        return refuse(amount)

    request = run(payment, 10_000)
    with pytest.raises(cairn.RequestError) as failure:
        request.output()
    assert failure.value.message == "amount 10000 exceeds the limit"
    assert effects.count("refuse") == 1
    record = cairn.get_request(request.id, store=request._store_url)._record()
    assert record.failure_reason == "request_error"
    assert record.error is not None and record.error["function_name"].endswith("refuse")


def test_a_caller_catches_a_child_failure_and_degrades_gracefully(run):
    @function(retries=Retries(max_retries=1, initial_delay=0.01))
    def breaks() -> str:
        raise KeyError("missing field 'price'")

    @application()
    @function()
    def tolerant() -> dict[str, str]:
        try:
            return {"value": breaks()}
        except cairn.FunctionError as error:
            return {
                "fallback": "cached",
                "type": str(error.error_type),
                "message": str(error.error_message),
                "attempts": str(error.attempts),
                "has_traceback": str("KeyError" in (error.traceback or "")),
            }

    output = run(tolerant).output()
    assert output == {
        "fallback": "cached",
        "type": "KeyError",
        "message": "\"missing field 'price'\"",
        "attempts": "2",
        "has_traceback": "True",
    }


def test_request_outcome_reasons(run):
    @function()
    def raises() -> None:
        raise RuntimeError("bad")

    @application()
    @function()
    def function_error_app() -> None:
        raises()

    @application()
    @function(timeout=1)
    def timeout_app() -> None:
        time.sleep(60)

    failed = run(function_error_app)
    with pytest.raises(cairn.RequestFailed) as error:
        failed.output()
    assert error.value.reason == "function_error"
    timed_out = run(timeout_app)
    with pytest.raises(cairn.RequestFailed) as error:
        timed_out.output()
    assert error.value.reason == "function_timeout"
    assert timed_out.status() is RequestStatus.FAILED


def test_a_function_stuck_in_c_or_spinning_is_stopped_and_the_caller_survives(
    run, effects
):
    @function(timeout=1)
    def sleeps_forever(i: int) -> int:
        effects.record(f"sleep {i}")
        time.sleep(10**6)
        return i

    @function(timeout=1)
    def spins() -> None:
        effects.record("spin")
        while True:
            pass

    @application()
    @function()
    def survivor(n: int) -> list[str]:
        results = []
        for i in range(n):
            try:
                sleeps_forever(i)
            except cairn.FunctionTimeout as error:
                results.append(f"{i}: {type(error).__name__}")
        try:
            spins()
        except cairn.FunctionError as error:
            results.append(f"spin: {type(error).__name__}")
        return results

    started = time.monotonic()
    request = run(survivor, 2)
    assert request.output() == [
        "0: FunctionTimeout",
        "1: FunctionTimeout",
        "spin: FunctionTimeout",
    ]
    assert time.monotonic() - started < 30
    calls = [c for c in request.calls() if c.function.endswith("sleeps_forever")]
    assert [c.status for c in calls] == [CallStatus.TIMED_OUT, CallStatus.TIMED_OUT]
    assert calls[0].attempts[0].outcome == "timed_out"


def test_progress_keeps_a_long_function_alive_past_its_timeout(run):
    @function(timeout=1)
    def long_job(seconds: float) -> float:
        ctx = RequestContext.get()
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(0.25)
            ctx.progress.update(time.monotonic() - started, seconds, "working")
        return seconds

    @application()
    @function()
    def patient() -> float:
        return long_job(4.0)

    assert run(patient).output() == 4.0


def test_waiting_on_children_does_not_count_against_the_timeout(run):
    @function()
    def slow_child() -> int:
        time.sleep(2.5)
        return 1

    @function(timeout=1)
    def waits() -> int:
        return slow_child() + sum(slow_leaf.map([0.5, 0.5]))

    @function()
    def slow_leaf(seconds: float) -> int:
        time.sleep(seconds * 3)
        return 1

    @application()
    @function()
    def waiting_app() -> int:
        return waits()

    assert run(waiting_app).output() == 3


def test_timed_out_parent_is_retried_and_reuses_its_completed_children(
    run, effects, tmp_path
):
    first_attempt = tmp_path / "first"

    @function()
    def child(i: int) -> int:
        effects.record(f"child {i}")
        return i

    @function(timeout=1, retries=Retries(max_retries=2, initial_delay=0.05))
    def parent_job() -> int:
        total = child(1) + child(2)
        effects.record("parent body")
        if not first_attempt.exists():
            first_attempt.touch()
            time.sleep(60)
        return total + child(3)

    @application()
    @function()
    def retry_app() -> int:
        return parent_job()

    request = run(retry_app)
    assert request.output() == 6
    assert effects.count("child 1") == 1
    assert effects.count("child 2") == 1
    assert effects.count("child 3") == 1
    assert effects.count("parent body") == 2
    parent = next(c for c in request.calls() if c.function.endswith("parent_job"))
    assert [a.outcome for a in parent.attempts] == ["timed_out", "success"]


def test_out_of_retries_on_timeout_the_caller_gets_function_timeout(run, effects):
    @function(timeout=1, retries=Retries(max_retries=1, initial_delay=0.05))
    def always_slow() -> None:
        effects.record("attempt")
        time.sleep(60)

    @application()
    @function()
    def catcher() -> str:
        try:
            always_slow()
        except cairn.FunctionTimeout as error:
            assert isinstance(error, cairn.FunctionError)
            return f"gave up after {error.attempts}"
        return "unreachable"

    assert run(catcher).output() == "gave up after 2"
    assert effects.count("attempt") == 2


def test_retry_after_uses_the_given_delay(run, effects):
    @function(retries=Retries(max_retries=1, initial_delay=30))
    def throttled() -> str:
        effects.record(f"{time.monotonic()}")
        if len(effects.lines()) == 1:
            raise cairn.RetryAfter(0.3)
        return "ok"

    @application()
    @function()
    def throttle_app() -> str:
        return throttled()

    started = time.monotonic()
    assert run(throttle_app).output() == "ok"
    first, second = (float(x) for x in effects.lines())
    assert 0.3 <= second - first < 5
    assert time.monotonic() - started < 20


def test_a_crashing_process_counts_as_a_failed_attempt(run, effects):
    import os

    @function(retries=Retries(max_retries=1, initial_delay=0.01))
    def crashes() -> str:
        effects.record("try")
        if len(effects.lines()) == 1:
            os._exit(17)
        return "recovered"

    @application()
    @function()
    def crash_app() -> str:
        return crashes()

    request = run(crash_app)
    assert request.output() == "recovered"
    call = next(c for c in request.calls() if c.function.endswith("crashes"))
    assert [a.outcome for a in call.attempts] == ["crashed", "success"]
    assert "exit code 17" in call.attempts[0].error["message"]


def test_max_concurrency_caps_running_calls_of_a_function(run, effects, monkeypatch):
    monkeypatch.setenv("CAIRN_CONCURRENCY", "4")

    @function(max_concurrency=2)
    def rate_limited(i: int) -> int:
        effects.record(f"start {time.monotonic()}")
        time.sleep(0.3)
        effects.record(f"end {time.monotonic()}")
        return i

    @function()
    def caller(i: int) -> int:
        return rate_limited(i)  # an inline call: capped too

    @application()
    @function()
    def capped() -> list[int]:
        return rate_limited.map(range(4)) + caller.map(range(4))

    assert run(capped).output() == [0, 1, 2, 3, 0, 1, 2, 3]
    timeline = sorted(
        (float(line.split()[1]), 1 if line.startswith("start") else -1)
        for line in effects.lines()
    )
    running = peak = 0
    for _, delta in timeline:
        running += delta
        peak = max(peak, running)
    assert peak == 2


def test_cancel_stops_the_running_code_and_nothing_more_runs(run, effects, store_url):
    import threading

    @function()
    def tick(i: int) -> int:
        time.sleep(0.1)
        effects.record(f"tick {i}")
        return i

    @application()
    @function()
    def ticker(n: int) -> int:
        return sum(tick(i) for i in range(n))

    def cancel_soon() -> None:
        deadline = time.monotonic() + 30
        while len(effects.lines()) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        (pending,) = cairn.store.open_store(store_url).list_requests()
        cairn.get_request(pending.id, store=store_url).cancel()

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    request = run(ticker, 40)
    canceller.join()
    assert request.status() is RequestStatus.CANCELLED
    with pytest.raises(cairn.RequestFailed) as failure:
        request.output()
    assert failure.value.reason == "cancelled"
    ticks_at_cancel = len(effects.lines())
    time.sleep(1.0)
    assert len(effects.lines()) <= ticks_at_cancel + 1
    assert ticks_at_cancel < 10
    root = next(c for c in request.calls() if c.kind == "app")
    assert root.status is CallStatus.CANCELLED


def test_a_call_over_its_memory_limit_ends_out_of_memory_and_is_retried(run, effects):
    @function(memory=0.25, retries=Retries(max_retries=1, initial_delay=0.01))
    def hungry() -> int:
        effects.record("attempt")
        hoard = bytearray(400 * 1024 * 1024)  # touched: really resident
        for offset in range(0, len(hoard), 4096):
            hoard[offset] = 1
        time.sleep(5)
        return len(hoard)

    @application()
    @function()
    def greedy() -> str:
        try:
            hungry()
        except cairn.FunctionError as error:
            return str(error.error_type)
        return "no limit"

    request = run(greedy)
    assert request.output() == "OutOfMemory"
    call = next(c for c in request.calls() if c.function.endswith("hungry"))
    assert [a.outcome for a in call.attempts] == ["out_of_memory", "out_of_memory"]
    assert effects.count("attempt") == 2


def test_an_application_out_of_memory_fails_with_that_reason(run):
    @application()
    @function(memory=0.25)
    def greedy_app() -> int:
        hoard = bytearray(400 * 1024 * 1024)
        for offset in range(0, len(hoard), 4096):
            hoard[offset] = 1
        time.sleep(5)
        return 0

    with pytest.raises(cairn.RequestFailed) as failure:
        run(greedy_app).output()
    assert failure.value.reason == "out_of_memory"


_process_attempts: dict[str, int] = {}


def test_a_retry_runs_where_its_attempt_failed_keeping_the_process_state(run):
    """A dispatched call retried after its code raised runs again in the executor
    that ran it (free again, it claims it first): state kept in the process (a
    cache, a connection, a module global) is still there, as in Tensorlake's
    local mode. With two executors, a retry elsewhere would start from zero."""

    @application()
    @function(retries=cairn.Retries(max_retries=3, initial_delay=0.05))
    def counts_in_process(n: int) -> int:
        _process_attempts["n"] = _process_attempts.get("n", 0) + 1
        if _process_attempts["n"] < n:
            raise ConnectionError(f"attempt {_process_attempts['n']} fails")
        return _process_attempts["n"]

    assert run(counts_in_process, 4).output() == 4
