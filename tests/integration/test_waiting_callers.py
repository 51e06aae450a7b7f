"""A caller that waits on its children does not hold the executor they need."""

from __future__ import annotations

import time

from cairn import RETURN_WHEN, Future, application, function


@function()
def wc_sleep(label: str, seconds: float) -> str:
    time.sleep(seconds)
    return label


def test_first_completed_returns_the_fast_future_at_the_default_concurrency(
    run, monkeypatch
):
    monkeypatch.delenv("CAIRN_CONCURRENCY")  # the default: the cores, at least 2

    @application()
    @function()
    def first_of_three() -> dict[str, object]:
        started = time.monotonic()
        futures = [
            wc_sleep.future("slow", 2),
            wc_sleep.future("fast", 0),
            wc_sleep.future("slow too", 2),
        ]
        done, not_done = Future.wait(futures, return_when=RETURN_WHEN.FIRST_COMPLETED)
        return {
            "done": [f.result() for f in done],
            "not_done": len(not_done),
            "fast": time.monotonic() - started < 1.5,
        }

    assert run(first_of_three).output() == {
        "done": ["fast"],
        "not_done": 2,
        "fast": True,
    }
