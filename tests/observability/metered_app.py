"""Applications whose calls make every kind of figure /metrics shows."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cairn import RequestContext, Retries, application, function

FLAG_DIR = Path(os.environ.get("SRV_TEST_DIR", "."))


@function()
def metered_item(x: int) -> int:
    ctx = RequestContext.get()
    ctx.metrics.counter("items_seen", 2)
    ctx.metrics.timer("item_think", 0.25)
    time.sleep(0.05)  # long enough for idle executors to take other items
    return x


@application()
@function()
def metered_fanout(n: int) -> int:
    return sum(metered_item.map(list(range(n))))


@function(retries=Retries(max_retries=2, initial_delay=0.01, max_delay=0.01))
def metered_flaky(tag: str) -> str:
    marker = FLAG_DIR / f"flaky-{tag}"
    if not marker.exists():
        marker.write_text("failed once")
        raise ValueError("first try fails")
    return tag


@application()
@function()
def metered_retry(tag: str) -> str:
    return metered_flaky(tag)


@function(timeout=1)
def metered_stuck(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


@application()
@function()
def metered_timeout(seconds: float) -> str:
    try:
        return metered_stuck(seconds)
    except Exception as error:  # the caller degrades gracefully
        return type(error).__name__


@application()
@function()
def metered_wait(seconds: float) -> str:
    time.sleep(seconds)
    return "waited"
