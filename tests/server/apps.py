"""Applications the server tests serve (``cairn serve tests/server/apps.py``).

Names start with ``srv_``: decorated names are one global namespace. Files that
tests use to steer and observe the functions live in ``$SRV_TEST_DIR``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pydantic

from cairn import RequestContext, RequestError, Retries, application, function


def _dir() -> Path:
    return Path(os.environ.get("SRV_TEST_DIR", "."))


def _record(line: str) -> None:
    with open(_dir() / "effects.log", "a") as handle:
        handle.write(line + "\n")


class Point(pydantic.BaseModel):
    """A model defined by the application (not importable by a remote client)."""

    x: int
    y: int = 0


@application()
@function(description="Greets someone")
def srv_greet(name: str) -> str:
    return f"hello {name}"


@application()
@function()
def srv_add(a: int, b: int = 0) -> int:
    return a + b


@application()
@function()
def srv_nothing() -> str:
    return "nothing"


@application()
@function()
def srv_shift(point: Point, by: int = 1) -> Point:
    return Point(x=point.x + by, y=point.y + by)


@function()
def srv_square(x: int) -> int:
    return x * x


@application()
@function()
def srv_squares(n: int) -> list[int]:
    ctx = RequestContext.get()
    out = []
    for i in range(min(n, 50)):
        ctx.progress.update(i, n, f"squaring {i}", {"i": str(i)})
        out.append(srv_square(i))
    return out


@application()
@function()
def srv_ticker(count: int, interval_s: float = 0.05) -> int:
    """Reports progress ``count`` times, ``interval_s`` apart."""
    ctx = RequestContext.get()
    for i in range(min(count, 200)):
        time.sleep(min(max(interval_s, 0.0), 3.0))
        ctx.progress.update(i + 1, count, f"tick {i + 1}")
    return count


@application()
@function()
def srv_refuse(message: str) -> str:
    raise RequestError(message)


@application()
@function()
def srv_boom() -> str:
    raise ValueError("boom")


@function()
def srv_fetch(key: str) -> str:
    _record(f"fetch {key}")
    return f"fetched {key}"


@function(retries=Retries(max_retries=0))
def srv_publish(key: str, fetched: str) -> str:
    _record(f"publish {key}")
    if (_dir() / f"{key}.broken").exists():
        raise ConnectionError(f"publishing {key} failed")
    return f"published {fetched}"


@application()
@function()
def srv_pipeline(key: str) -> str:
    """Fetch (checkpointed), then publish: fails while ``<key>.broken`` exists."""
    return srv_publish(key, srv_fetch(key))


@application()
@function(timeout=60)
def srv_slow(key: str) -> str:
    """Reports progress until ``<key>.go`` exists (at most 30 s)."""
    ctx = RequestContext.get()
    deadline = time.monotonic() + 30
    step = 0
    while not (_dir() / f"{key}.go").exists() and time.monotonic() < deadline:
        step += 1
        ctx.progress.update(step, 0, "waiting")
        time.sleep(0.05)
    return f"released {key}"


@application()
@function()
def srv_headers(name: str) -> str | None:
    """The value of the invoking request's header ``name``."""
    return RequestContext.get().headers.get(name)
