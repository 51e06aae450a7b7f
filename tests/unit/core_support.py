"""An execution core in this process, without executors: a store, a deadline board,
a fake clock and an entered application frame, so the core's tests need no
subprocess and never sleep."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn import _ids, _retry
from cairn._execution import dispatch, frames
from cairn._registry import FunctionSpec
from cairn.store import CallKey, NewRequest, Store, open_store
from cairn.worker._deadlines import DeadlineBoard


@dataclass
class FakeClock:
    """Time that moves only when the core sleeps (or a test says so)."""

    wall_ms: float = 1_000_000.0
    monotonic: float = 100.0
    slept: list[float] = field(default_factory=list)

    def now_ms(self) -> float:
        return self.wall_ms

    def monotonic_s(self) -> float:
        return self.monotonic

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.wall_ms += seconds * 1000.0
        self.monotonic += seconds


def spec(
    name: str, fn: Callable[..., Any], *, max_retries: int = 0, delay_s: float = 1.0
) -> FunctionSpec:
    """A function's spec, as ``@function()`` would register it (but not registered)."""
    return FunctionSpec(
        name=name,
        fn=fn,
        module=__name__,
        retries=_retry.validate(max_retries, delay_s, 60.0, 2.0),
    )


@dataclass
class Core:
    """The pieces of an executor process, for one request."""

    store: Store
    clock: FakeClock
    board: DeadlineBoard
    request_id: str

    @contextmanager
    def run(self, run: int = 1) -> Iterator[frames.Frame]:
        """The application call's frame of run ``run``, entered."""
        key = _root(self.request_id)
        request_run = frames.RequestRun(self.request_id, run, False, "core_app")
        frame = frames.open_frame(request_run, key, spec("core_app", lambda: None))
        token = frames.enter(frame)
        try:
            yield frame
        finally:
            frames.leave(token)
            frames.close_frame(frame)


def _root(request_id: str) -> CallKey:
    return CallKey(
        id=request_id,
        request_id=request_id,
        parent_id=None,
        seq=0,
        function="core_app",
        kind="app",
        group_id=request_id,
        dispatched=True,
    )


@contextmanager
def core(tmp_path: Path) -> Iterator[Core]:
    """A store with one request, and this process installed as its executor."""
    store = open_store(f"sqlite:///{tmp_path / 'core.db'}")
    clock = FakeClock()
    board = DeadlineBoard()
    request_id = _ids.new_request_id()
    store.create_request(
        NewRequest(
            id=request_id,
            application="core_app",
            code_ref=None,
            input=b"{}",
            headers={},
            created_at_ms=clock.now_ms(),
        ),
        _root(request_id),
        b"{}",
    )
    frames.install(
        frames.Process(
            store, "core-worker", 0, board, clock=clock, run_batch=dispatch.run_batch
        )
    )
    try:
        yield Core(store, clock, board, request_id)
    finally:
        frames.install(None)
        board.close()
        store.close()
