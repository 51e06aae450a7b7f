"""A replay takes the path the recorded run took: waits whose outcome depends on
timing return what the recorded run saw."""

from __future__ import annotations

import time

import pytest

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
        done, _ = Future.wait([slow, fast], return_when=RETURN_WHEN.FIRST_COMPLETED)
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


def test_a_call_whose_arguments_changed_is_not_served_its_checkpoint(
    run, effects, tmp_path
):
    mode = tmp_path / "mode"
    mode.write_text("before")
    broken = tmp_path / "broken"
    broken.touch()

    @function()
    def rf_load(i: int) -> int:
        effects.record(f"load {i}")
        return i * 10

    @application()
    @function()
    def loader() -> list[int]:
        out = [rf_load(1)]
        if mode.read_text() == "after":
            out.append(rf_load(99))  # takes the position (and id) load(2) had
        out.append(rf_load(2))
        if broken.exists():
            raise RuntimeError("fails after loading")
        return out

    request = run(loader)
    assert request.status() is RequestStatus.FAILED
    mode.write_text("after")
    broken.unlink()
    request.replay(strict=True)
    with pytest.raises(cairn.ReplayMismatch, match=r"rf_load.*argument 0 changed"):
        request.output()
    request.replay()
    assert request.output() == [10, 990, 20]
    assert effects.lines() == ["load 1", "load 2", "load 99", "load 2"]


def test_futures_and_map_items_whose_arguments_changed_run_again(
    run, effects, tmp_path
):
    offset = tmp_path / "offset"
    offset.write_text("0")
    broken = tmp_path / "broken"
    broken.touch()

    @function()
    def rf_shift(i: int) -> int:
        effects.record(f"shift {i}")
        return i + 100

    @application()
    @function()
    def shifter() -> dict[str, object]:
        base = int(offset.read_text())
        out = {
            "future": rf_shift.future(base + 1).result(),
            "map": rf_shift.map([base + 2, 3]),
            # Its argument is a Future's id, the same in every run: the call runs
            # again because the Future it takes runs again.
            "chained": rf_shift.future(rf_shift.future(base + 4)).result(),
        }
        if broken.exists():
            raise RuntimeError("fails after shifting")
        return out

    request = run(shifter)
    assert request.status() is RequestStatus.FAILED
    offset.write_text("10")
    broken.unlink()
    effects.clear()
    request.replay(strict=True)
    with pytest.raises(cairn.ReplayMismatch, match=r"rf_shift.*argument 0 changed"):
        request.output()
    request.replay()
    assert request.output() == {"future": 111, "map": [112, 103], "chained": 214}
    # The item whose argument stayed (3) is served; the changed ones run.
    assert sorted(effects.lines()) == ["shift 11", "shift 114", "shift 12", "shift 14"]
