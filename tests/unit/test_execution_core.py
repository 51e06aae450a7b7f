"""The execution core in one process: attempts, retries, checkpoints, Futures that
can never finish, coroutine Futures, failure records. No executor, no sleeping."""

from __future__ import annotations

import asyncio
import pickle
import traceback
from typing import Any

import pytest

from cairn import errors
from cairn._execution import arguments, coroutines, driver, failures, futures, scheduler
from tests.unit.core_support import core, spec


def _key(frame: Any, name: str) -> Any:
    return frame.child_key(["FunctionCall", name], [], name, "call")


def test_an_inline_call_retries_after_its_backoff_on_the_injected_clock(tmp_path):
    tries: list[int] = []

    def flaky(x: int) -> int:
        tries.append(x)
        if len(tries) < 3:
            raise ValueError(f"try {len(tries)}")
        return x + 1

    flaky_spec = spec("core_flaky", flaky, max_retries=3, delay_s=10.0)
    with core(tmp_path) as c, c.run() as frame:
        assert (
            driver.run_inline(frame, _key(frame, "core_flaky"), flaky_spec, (4,), {})
            == 5
        )
        attempts = c.store.list_attempts(c.request_id)
    assert tries == [4, 4, 4]
    # Two backoffs, waited on the fake clock: about 10 s then 20 s (with jitter).
    assert len(c.clock.slept) == 2 and all(s >= 5 for s in c.clock.slept)
    assert sorted(a.attempt for a in attempts) == [1, 2, 3]


def test_a_replay_serves_the_checkpoint_without_running_the_call(tmp_path):
    runs: list[int] = []

    def once(x: int) -> int:
        runs.append(x)
        return x * 10

    once_spec = spec("core_once", once)
    with core(tmp_path) as c:
        with c.run() as frame:
            assert (
                driver.run_inline(frame, _key(frame, "core_once"), once_spec, (1,), {})
                == 10
            )
        with c.run(run=2) as frame:
            assert (
                driver.run_inline(frame, _key(frame, "core_once"), once_spec, (1,), {})
                == 10
            )
    assert runs == [1]


def test_a_final_failure_raises_at_the_call_site_with_the_users_frames(tmp_path):
    def user_code_that_breaks() -> None:
        raise KeyError("price")

    broken = spec("core_broken", user_code_that_breaks)
    with core(tmp_path) as c, c.run() as frame:
        with pytest.raises(errors.FunctionError) as raised:
            driver.run_inline(frame, _key(frame, "core_broken"), broken, (), {})
    error = raised.value
    assert error.error_type == "KeyError" and error.attempts == 1
    assert error.traceback is not None
    assert "user_code_that_breaks" in error.traceback
    assert "cairn/_execution" not in error.traceback


def test_a_future_whose_call_was_never_started_fails_instead_of_waiting(tmp_path):
    with core(tmp_path) as c, c.run():
        missing = futures.RefFuture(futures.Ref("no-such-call"))
        scheduler.wait([missing], None, scheduler.RETURN_WHEN.ALL_COMPLETED)
        group = futures.RefFuture(futures.Ref("no-such-map", count=3))
        scheduler.wait([group], None, scheduler.RETURN_WHEN.ALL_COMPLETED)
    for future, name in ((missing, "no-such-call"), (group, "no-such-map")):
        assert isinstance(future.exception, errors.InternalError)
        assert name in str(future.exception)
        assert "never started" in str(future.exception)


def test_wait_modes():
    class Done:
        def __init__(self, done: bool, failed: bool = False) -> None:
            self._done = done
            self._exception = ValueError() if failed else None

    ok, failed, pending = Done(True), Done(True, failed=True), Done(False)
    mode = scheduler.RETURN_WHEN
    assert scheduler.satisfied([ok, pending], mode.FIRST_COMPLETED)  # type: ignore[list-item]
    assert not scheduler.satisfied([ok, pending], mode.ALL_COMPLETED)  # type: ignore[list-item]
    assert not scheduler.satisfied([ok, pending], mode.FIRST_FAILURE)  # type: ignore[list-item]
    assert scheduler.satisfied([failed, pending], mode.FIRST_FAILURE)  # type: ignore[list-item]
    assert scheduler.satisfied([ok, ok], mode.FIRST_FAILURE)  # type: ignore[list-item]
    with pytest.raises(errors.SDKUsageError):
        scheduler.check_timeout(-1)


def test_a_future_coroutine_is_awaited_once_and_unwraps_to_its_future():
    future = futures.Future()
    future._started = True
    future._finish(7)
    coroutine = coroutines.FutureCoroutine(future)

    async def twice() -> tuple[int, str]:
        first = await coroutine
        try:
            await coroutine
        except RuntimeError as error:
            return first, str(error)
        return first, "no error"

    assert asyncio.run(twice()) == (7, "cannot reuse already awaited coroutine")
    fresh = coroutines.FutureCoroutine(future)
    assert futures.as_input(fresh) is future
    with pytest.raises(RuntimeError, match="cannot reuse"):
        futures.as_input(fresh)  # the SDK consumed it
    assert futures.as_input(3) == 3


def test_user_traceback_leaves_out_cairns_frames():
    def user_function() -> None:
        raise ValueError("boom")

    try:
        driver.invoke(spec("core_user", user_function), (), {})
    except ValueError as error:
        assert "driver.py" in "".join(traceback.format_exception(error))
        text = failures.user_traceback(error)
    assert "user_function" in text and "ValueError: boom" in text
    assert "driver.py" not in text


def test_arguments_are_compared_as_values_not_as_pickles():
    def blob(*args: Any, **kwargs: Any) -> bytes:
        return pickle.dumps((args, kwargs))

    # The same values, pickled differently (as in another process): not a change.
    assert pickle.dumps({1, 9}) != pickle.dumps({9, 1})
    assert arguments.changed(blob({1, 9}), blob({9, 1}), "f") is None
    assert (
        arguments.changed(blob(d={"x": 1, "y": 2}), blob(d={"y": 2, "x": 1}), "f")
        is None
    )
    assert arguments.changed(blob(float("nan")), blob(float("nan")), "f") is None
    assert arguments.changed(blob(1, [2, 3]), blob(1, [2, 4]), "f") == "argument 1"
    assert arguments.changed(blob(x=1), blob(x=True), "f") == "argument 'x'"
    assert arguments.changed(blob(1), blob(1, 2), "f") == "the arguments"
    assert arguments.changed(None, blob(1), "f") is None  # nothing recorded


def test_objects_without_equality_compare_by_state():
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    assert arguments.same(Point(1), Point(1))
    assert not arguments.same(Point(1), Point(2))
    assert not arguments.same(Point(1), 1)


def _registered(name: str, fn: Any) -> Any:
    from cairn import _decorators, _registry

    function_spec = spec(name, fn)
    _registry.register(function_spec)
    return _decorators.Function(function_spec)


def test_a_caller_waiting_on_all_runs_its_futures_pending_calls_itself(tmp_path):
    square = _registered("core_square", lambda x: x * x)
    add = _registered("core_add", lambda a, b: a + b)
    with core(tmp_path) as c, c.run():
        # No executor runs here: the waiting caller claims and runs the calls.
        total = futures.ReduceFuture(add, futures.MapFuture(square, range(4)), 0)
        assert total.result() == 14
        # A map over a Future's output is a call of its own, run the same way.
        assert futures.MapFuture(
            square, futures.MapFuture(square, [1, 2])
        ).result() == [
            1,
            16,
        ]
    assert not c.clock.slept  # nothing waited on the clock: all of it ran here


def test_a_failure_whose_message_cannot_be_made_is_still_recorded():
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    try:
        raise Unprintable()
    except Unprintable as error:
        record = failures.error_record(error, "f")
    assert record["type"].endswith("Unprintable")
    assert record["message"] == (
        "<str() of the test_a_failure_whose_message_cannot_be_made_is_still_recorded."
        "<locals>.Unprintable failed: RuntimeError('no text')>"
    )
    assert "raise Unprintable()" in record["traceback"]
