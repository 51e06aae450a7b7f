"""Applications the dashboard tests serve (``cairn serve tests/dashboard/apps.py``).

Names start with ``dash_``: decorated names are one global namespace. Files that
tests use to steer the functions live in ``$SRV_TEST_DIR``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pydantic

from cairn import FunctionTimeout, RequestContext, Retries, application, function

EVIL = "<script>window.__pwned = 1</script><img src=x onerror=window.__pwned=2>"


def _dir() -> Path:
    return Path(os.environ.get("SRV_TEST_DIR", "."))


class Reading(pydantic.BaseModel):
    """A value of the application's own type (pickled between functions)."""

    sensor: str
    value: float


@application()
@function(description="Counts to `count`, reporting progress at each step")
def dash_ticker(count: int, interval_s: float = 0.1) -> int:
    ctx = RequestContext.get()
    for i in range(min(count, 500)):
        time.sleep(min(max(interval_s, 0.0), 2.0))
        ctx.progress.update(i + 1, count, f"step {i + 1} of {count}")
    return count


@function()
def dash_fetch(key: str) -> str:
    return f"fetched {key}"


@function(retries=Retries(max_retries=0))
def dash_publish(key: str, fetched: str) -> str:
    if (_dir() / f"{key}.broken").exists():
        raise ConnectionError(f"publishing {key} failed: the sink is down")
    return f"published {fetched}"


@application()
@function(
    description="Prepare (`steps` progress steps), fetch (checkpointed), then publish: "
    "fails while <key>.broken exists"
)
def dash_pipeline(key: str, steps: int = 0, interval_s: float = 0.1) -> str:
    ctx = RequestContext.get()
    steps = min(max(steps, 0), 500)
    total = steps + 2
    for i in range(steps):
        time.sleep(min(max(interval_s, 0.0), 2.0))
        ctx.progress.update(i + 1, total, f"preparing {i + 1} of {steps}")
    ctx.progress.update(total - 1, total, "fetching")
    fetched = dash_fetch(key)
    ctx.progress.update(total, total, "publishing")
    return dash_publish(key, fetched)


@function(retries=Retries(max_retries=2, initial_delay=0.05, max_delay=0.05))
def dash_flaky(key: str) -> str:
    counter = _dir() / f"{key}.attempts"
    tries = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(tries))
    if tries < 3:
        raise RuntimeError(f"attempt {tries} of {key} failed")
    return f"{key} worked on attempt {tries}"


@application()
@function(description="A call that fails twice, then succeeds on its second retry")
def dash_retry(key: str) -> str:
    return dash_flaky(key)


@function()
def dash_echo_evil(text: str) -> str:
    return text


@application()
@function()
def dash_evil(fail: bool = False, hold_s: float = 0.0) -> str:
    """Reports (for ``hold_s`` seconds), returns and raises text that is HTML."""
    ctx = RequestContext.get()
    deadline = time.monotonic() + min(hold_s, 30.0)
    step = 0
    while True:
        step += 1
        ctx.progress.update(step, step + 1, EVIL)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    out = dash_echo_evil(EVIL)
    if fail:
        raise ValueError(EVIL)
    return out


@function()
def dash_square(x: int) -> int:
    return x * x


@application()
@function(description="A map over n items")
def dash_fanout(n: int) -> int:
    return sum(dash_square.map(list(range(n))))


@function()
def dash_half(x: int) -> int:
    if x % 7 == 3:
        raise ValueError(f"item {x} is unlucky")
    return x // 2


@function()
def dash_read(sensor: str) -> Reading:
    return Reading(sensor=sensor, value=21.5)


@function()
def dash_total(acc: int, x: int) -> int:
    return acc + x


@application()
@function(description="Nested calls, a map with failures caught, a reduce")
def dash_mixed(n: int = 10) -> dict[str, object]:
    reading = dash_read("kitchen")
    halves = []
    for x in range(n):
        try:
            halves.append(dash_half(x))
        except Exception:
            halves.append(-1)
    squares = dash_square.map(list(range(n)))
    total = dash_total.reduce(squares, 0)
    return {"sensor": reading.sensor, "halves": halves, "total": total}


@application()
@function()
def dash_add(a: int, b: int = 0) -> int:
    return a + b


@function()
def dash_shared_lists(levels: int) -> list[object]:
    """A list sharing one sub-list at every level: 2**levels leaves, a tiny pickle."""
    value: list[object] = [0]
    for _ in range(min(levels, 40)):
        value = [value, value]
    return value


@function()
def dash_grid(n: int) -> list[list[int]]:
    row = [0] * min(n, 10_000)
    return [row] * min(n, 10_000)


@application()
@function(description="Returns values whose text is far larger than their pickles")
def dash_expanding(levels: int = 22, n: int = 3000) -> int:
    return len(dash_shared_lists(levels)) + len(dash_grid(n))


@application()
@function(description="The length of a (large) JSON input")
def dash_measure(data: list[object]) -> int:
    return len(data)


@function(timeout=1, retries=Retries(max_retries=1, initial_delay=0.05, max_delay=0.05))
def dash_stuck(seconds: float) -> str:
    time.sleep(min(max(seconds, 0.0), 30.0))
    return "woke"


@application()
@function(description="A call that times out on both its attempts; caught")
def dash_deadline(seconds: float = 30.0) -> str:
    try:
        return dash_stuck(seconds)
    except FunctionTimeout:
        return "gave up"


@application()
@function(description="An agent of `steps` steps: a checkpointed call every interval")
def dash_steps(steps: int = 30, interval_s: float = 0.1) -> int:
    ctx = RequestContext.get()
    for i in range(min(max(steps, 0), 500)):
        dash_fetch(f"step-{i}")
        ctx.progress.update(i + 1, steps, f"step {i + 1}")
        time.sleep(min(max(interval_s, 0.0), 5.0))
    return steps


@application()
@function(description="A list of n words: a JSON output far over the page's budget")
def dash_words(n: int = 5000) -> list[str]:
    return [f"word {i}" for i in range(min(max(n, 0), 200_000))]
