"""Replay modes (adaptive, strict, from_call) and the Future API."""

from __future__ import annotations

import asyncio
import time

import pytest

import cairn
from cairn import RETURN_WHEN, Future, application, function
from cairn.types import RequestStatus


def test_strict_replay_detects_a_changed_path(run, effects, tmp_path):
    mode = tmp_path / "mode"
    mode.write_text("a")

    @function()
    def fetch_a() -> str:
        effects.record("a")
        return "a"

    @function()
    def fetch_b() -> str:
        effects.record("b")
        return "b"

    @function()
    def finish(x: str) -> str:
        return x.upper()

    @application()
    @function()
    def branching() -> str:
        first = fetch_a() if mode.read_text() == "a" else fetch_b()
        return finish(first)

    request = run(branching)
    assert request.output() == "A"
    mode.write_text("b")
    request.replay(strict=True)
    assert request.status() is RequestStatus.FAILED
    with pytest.raises(cairn.ReplayMismatch, match=r"fetch_a.*fetch_b"):
        request.output()
    assert effects.lines() == ["a"]
    # Adaptive replay (the default) accepts the new path and runs the new call.
    request.replay()
    assert request.output() == "B"
    assert effects.lines() == ["a", "b"]


def test_strict_replay_of_unchanged_code_serves_everything(run, effects):
    @function()
    def stable(i: int) -> int:
        effects.record(f"stable {i}")
        return i

    @application()
    @function()
    def unchanged() -> int:
        return stable(1) + stable(2)

    request = run(unchanged)
    request.replay(strict=True)
    assert request.output() == 3
    assert effects.count("stable 1") == 1 and effects.count("stable 2") == 1


def test_replay_from_call_forks_that_call_and_everything_after_it(run, effects):
    @function()
    def plan(i: int) -> int:
        effects.record(f"plan {i}")
        return i

    @application()
    @function()
    def planner() -> list[int]:
        return [plan(i) for i in range(5)]

    request = run(planner)
    third = next(
        c for c in request.calls() if c.function.endswith("plan") and c.seq == 2
    )
    effects.clear()
    request.replay(from_call=third.id)
    assert request.output() == [0, 1, 2, 3, 4]
    assert effects.lines() == ["plan 2", "plan 3", "plan 4"]
    with pytest.raises(cairn.SDKUsageError, match="no call 'nope'"):
        request.replay(from_call="nope")


def test_replay_serves_checkpoints_across_read_ahead_pages(run, effects, tmp_path):
    # A replaying call reads its stored children ahead, a page at a time: every
    # page boundary must serve what is stored and run only what is not.
    broken = tmp_path / "broken"
    broken.touch()

    @function()
    def long_step(i: int) -> int:
        effects.record(f"step {i}")
        if i == 1050 and broken.exists():
            raise RuntimeError("step 1050 fails the first time")
        return i

    @application()
    @function()
    def long_walk(n: int) -> int:
        return sum(long_step(i) for i in range(n))

    request = run(long_walk, 1100)
    assert request.status() is RequestStatus.FAILED
    broken.unlink()
    effects.clear()
    request.replay()
    assert request.output() == sum(range(1100))
    assert effects.lines() == [f"step {i}" for i in range(1050, 1100)]
    served = [c for c in request.calls() if c.served_from_checkpoint]
    assert len(served) == 1050


def test_wait_modes_and_timeouts(run):
    @function()
    def nap(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @function()
    def fails_fast() -> None:
        raise ValueError("fast failure")

    @application()
    @function()
    def waiter() -> dict[str, object]:
        out: dict[str, object] = {}
        quick, slow = nap.future(0.05).run(), nap.future(1.5).run()
        done, not_done = Future.wait(
            [quick, slow], return_when=RETURN_WHEN.FIRST_COMPLETED
        )
        out["first_completed"] = ([f.result() for f in done], len(not_done))
        bad, slow2 = fails_fast.future().run(), nap.future(1.5).run()
        done, _ = Future.wait([slow2, bad], return_when=RETURN_WHEN.FIRST_FAILURE)
        out["first_failure"] = [type(f.exception).__name__ for f in done]
        all_done, rest = Future.wait([nap.future(0.01), nap.future(0.02)])
        out["all"] = ([f.result() for f in all_done], len(rest))
        pending = nap.future(5).run()
        done, not_done = Future.wait([pending], timeout=0.2)
        out["timeout"] = (type(done[0].exception).__name__, len(not_done))
        try:
            nap.future(5).run().result(timeout=0.1)
        except cairn.TimeoutError as error:
            out["result_timeout"] = isinstance(error, TimeoutError)
        return out

    assert run(waiter).output() == {
        "first_completed": [[0.05], 1],
        "first_failure": ["FunctionError"],
        "all": [[0.01, 0.02], 0],
        "timeout": ["TimeoutError", 0],
        "result_timeout": True,
    }


def test_data_dependencies_tail_calls_run_later_and_reduce(run):
    @function()
    def square(x: int) -> int:
        return x * x

    @function()
    def add(a: int, b: int) -> int:
        return a + b

    @function()
    def numbers(n: int) -> list[int]:
        return list(range(n))

    @function()
    def tail(x: int) -> Future:
        return add.future(square.future(x), 1)

    @function()
    def stamp(_: int) -> float:
        return time.time()

    @application()
    @function()
    def composer(n: int) -> dict[str, object]:
        started = time.time()
        later = stamp.future(0).run_later(0.5)
        return {
            "dependency": add.future(square.future(3), 4).result(),
            "map_of_future": square.map(numbers.future(n)),
            "reduce": add.reduce(square.map(range(n)), 100),
            "reduce_no_initial": add.reduce([1, 2, 3]),
            "reduce_one": add.reduce([], 7),
            "future_reduce": add.future.reduce([1, 2], 0).result(),
            "tail": tail(5),
            "later": later.result() - started >= 0.5,
        }

    assert run(composer, 4).output() == {
        "dependency": 13,
        "map_of_future": [0, 1, 4, 9],
        "reduce": 114,
        "reduce_no_initial": 6,
        "reduce_one": 7,
        "future_reduce": 3,
        "tail": 26,
        "later": True,
    }


def test_reduce_of_nothing_is_a_usage_error(run):
    @function()
    def plus(a: int, b: int) -> int:
        return a + b

    @application()
    @function()
    def empty_reduce() -> int:
        return plus.reduce([])

    with pytest.raises(cairn.RequestFailed, match="reduce of empty iterable"):
        run(empty_reduce).output()


def test_async_functions_gather_map_and_futures(run, effects):
    # Long enough that one after the other (n x 0.2 s) never passes for together,
    # on a loaded machine too.
    @function()
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.2)
        effects.record(f"fetch {i}")
        return i

    @function()
    def sync_square(x: int) -> int:
        return x * x

    @application()
    @function()
    async def crawler(n: int) -> dict[str, object]:
        started = time.monotonic()
        gathered = await asyncio.gather(*[fetch(i) for i in range(n)])
        concurrent = time.monotonic() - started < 0.2 * n
        mapped = await fetch.map(range(n, n + 3))
        squared = await sync_square.future(9)
        return {
            "gathered": gathered,
            "concurrent": concurrent,
            "mapped": mapped,
            "sq": squared,
        }

    request = run(crawler, 5)
    assert request.output() == {
        "gathered": [0, 1, 2, 3, 4],
        "concurrent": True,
        "mapped": [5, 6, 7],
        "sq": 81,
    }
    effects.clear()
    request.replay()
    assert effects.lines() == []


def test_a_started_future_holds_the_request_open_until_it_finishes(run, effects):
    @function()
    def background() -> None:
        time.sleep(0.5)
        effects.record("background done")

    @application()
    @function()
    def fire_and_forget() -> str:
        background.future().run()
        return "returned"

    request = run(fire_and_forget)
    assert request.output() == "returned"
    assert effects.lines() == ["background done"]


def test_deep_fan_out_does_not_deadlock_a_small_pool(run, monkeypatch):
    monkeypatch.setenv("CAIRN_CONCURRENCY", "2")

    @function()
    def tree(depth: int) -> int:
        if depth == 0:
            return 1
        return sum(tree.map([depth - 1] * 3))

    @application()
    @function()
    def forest(depth: int) -> int:
        return tree(depth)

    assert run(forest, 4).output() == 3**4


def test_cls_methods_share_one_instance_per_process(run):
    @cairn.cls()
    class Model:
        def __init__(self) -> None:
            self.loaded = time.time()

        @function()
        def predict(self, x: int) -> float:
            return self.loaded

    @application()
    @function()
    def inference() -> bool:
        model = Model()
        return model.predict(1) == model.predict(2)

    assert run(inference).output() is True
