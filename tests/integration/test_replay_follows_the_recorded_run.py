"""A replay takes the path the recorded run took: waits whose outcome depends on
timing return what the recorded run saw."""

from __future__ import annotations

import time

import cairn
from cairn import RETURN_WHEN, Future, application, function
from cairn.types import RequestStatus


@function()
def rf_nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_first_completed_and_timeouts_return_the_recorded_split(run, effects, tmp_path):
    broken = tmp_path / "broken"
    broken.touch()

    # One function per path: a different path is a different call, never served.
    @function()
    def rf_fast_first() -> str:
        effects.record("fast first")
        return "fast first"

    @function()
    def rf_both_done() -> str:
        effects.record("both done")
        return "both done"

    @function()
    def rf_late_in_time() -> str:
        effects.record("late in time")
        return "late in time"

    @function()
    def rf_late_timed_out() -> str:
        effects.record("late timed out")
        return "late timed out"

    @application()
    @function()
    def racer() -> list[str]:
        slow, fast = rf_nap.future(1.0), rf_nap.future(0)
        done, _ = Future.wait(
            [slow, fast], return_when=RETURN_WHEN.FIRST_COMPLETED
        )
        first = rf_fast_first() if done == [fast] else rf_both_done()
        late = rf_nap.future(1.0).run()
        try:
            late.result(timeout=0.2)
            second = rf_late_in_time()
        except cairn.TimeoutError:
            second = rf_late_timed_out()
        # Every Future finishes before the request fails: a replay finds them all
        # done, and without a journal its waits would see them so.
        slow.result()
        time.sleep(1.2)
        if broken.exists():
            raise RuntimeError("fails after its waits")
        return [first, second]

    request = run(racer)
    assert request.status() is RequestStatus.FAILED
    assert effects.lines() == ["fast first", "late timed out"]
    broken.unlink()
    request.replay()
    assert request.output() == ["fast first", "late timed out"]
    assert effects.lines() == ["fast first", "late timed out"]  # served, not run again
