"""The running call (``Frame``), the run of the request it belongs to, and the
executor process's handles (``Process``)."""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cairn import _ids, errors
from cairn.store import (
    CallKey,
    ClaimedCall,
    ClaimScope,
    RecordedChild,
    RequestRecord,
    Store,
)

from . import clock as _clock
from . import failures

if TYPE_CHECKING:
    from cairn._registry import FunctionSpec
    from cairn.worker._deadlines import DeadlineBoard

    from .storage import Flusher

# Children a replaying call reads from the store per query.
_READ_AHEAD = 500


@dataclass(eq=False)
class RequestRun:
    """One run (original or replay) of one request, as seen by this process."""

    request_id: str
    run: int
    strict: bool
    application: str = ""
    served: list[str] = field(default_factory=list)
    headers: dict[str, str] | None = None
    #: the first RequestError a call of this run failed with, as this process saw
    #: it: the request fails with it (Tensorlake's request-level request_error),
    #: even when a caller caught it and went on
    request_error: errors.RequestError | None = None

    def note(self, error: BaseException) -> BaseException:
        """Remember ``error`` if it is the run's first RequestError; return it."""
        if isinstance(error, errors.RequestError) and self.request_error is None:
            self.request_error = error
        return error


@dataclass(eq=False)
class Frame:
    """A call whose code runs in this process."""

    run: RequestRun
    key: CallKey
    spec: FunctionSpec
    timeout_s: float
    previous_id: str
    slot: int = -1
    #: the attempt's number (over every run of the request), for logs and traces
    attempt: int = 0
    next_seq: int = 0
    waiting: int = 0
    state_writes: dict[str, bytes] = field(default_factory=dict)
    recorded: list[Any] | None = None
    started_at_ms: float = 0.0
    # Stored in-process children read ahead of the code reaching them: a replay
    # serves thousands of checkpoints with one query per page, not two per call.
    # Only this frame writes its in-process children, so a position it read ahead
    # with no row has none until the frame itself runs that call.
    read_ahead: dict[str, RecordedChild] = field(default_factory=dict)
    read_ahead_from: int = 0
    read_ahead_until: int = 0

    def next_child(
        self, metadata: list[str], dependency_ids: list[str]
    ) -> tuple[str, int]:
        """The durable id and position of the next call this frame starts."""
        call_id = _ids.child_id(self.key.id, self.previous_id, metadata, dependency_ids)
        self.previous_id = call_id
        seq = self.next_seq
        self.next_seq += 1
        return call_id, seq

    def child_key(
        self,
        metadata: list[str],
        dependency_ids: list[str],
        function: str,
        kind: str,
        *,
        dispatched: bool = False,
    ) -> CallKey:
        """The key of the next child this frame starts."""
        call_id, seq = self.next_child(metadata, dependency_ids)
        return CallKey(
            id=call_id,
            request_id=self.run.request_id,
            parent_id=self.key.id,
            seq=seq,
            function=function,
            kind=kind,
            group_id=call_id if dispatched else None,
            dispatched=dispatched,
        )

    def suspend(self) -> None:
        """Children run (or are awaited): this call's own clock stops."""
        self.waiting += 1
        if self.waiting == 1:
            process().board.suspend(self.slot)

    def resume(self) -> None:
        """A child result was delivered: the clock restarts at a full timeout."""
        self.waiting -= 1
        if self.waiting == 0:
            process().board.extend(self.slot, self.timeout_s)

    def heartbeat(self) -> None:
        """Progress was reported: push the deadline."""
        if self.waiting == 0:
            process().board.extend(self.slot, self.timeout_s)

    def recorded_child(self, key: CallKey, store: Store) -> RecordedChild | None:
        """The stored row of the child at ``key`` (None: no such call is stored)."""
        if not self.read_ahead_from <= key.seq < self.read_ahead_until:
            rows = store.list_recorded_children(
                self.key.request_id, self.key.id, key.seq, _READ_AHEAD
            )
            self.read_ahead = {row.id: row for row in rows}
            self.read_ahead_from = key.seq
            # A short page holds every stored child from here on.
            full = len(rows) == _READ_AHEAD
            self.read_ahead_until = rows[-1].seq + 1 if full else sys.maxsize
        return self.read_ahead.pop(key.id, None)

    def check_strict(self, key: CallKey, store: Store) -> None:
        """In a strict replay, the call at this position must be the recorded one."""
        if not self.run.strict:
            return
        if self.recorded is None:
            self.recorded = store.list_children(self.key.request_id, self.key.id)
        for record in self.recorded:
            if record.seq == key.seq and record.id != key.id:
                raise failures.Diverged(
                    f"strict replay of request {self.run.request_id!r}: call #{key.seq} of "
                    f"{self.key.function!r} was {record.function!r} in the recorded run, "
                    f"but the code now calls {key.function!r}"
                )

    def check_strict_end(self) -> None:
        """In a strict replay, a call must not finish before its recorded children."""
        if not self.run.strict or self.recorded is None:
            return
        missing = [r for r in self.recorded if r.seq >= self.next_seq]
        if missing:
            raise failures.Diverged(
                f"strict replay of request {self.run.request_id!r}: {self.key.function!r} "
                f"returned after {self.next_seq} calls, but the recorded run went on to "
                f"call {missing[0].function!r} (call #{missing[0].seq})"
            )


def open_frame(run: RequestRun, key: CallKey, spec: FunctionSpec) -> Frame:
    """A frame for an attempt that starts now, with its deadline published."""
    runtime = process()
    frame = Frame(
        run=run,
        key=key,
        spec=spec,
        timeout_s=spec.timeout_s,
        previous_id=key.id,
        started_at_ms=runtime.clock.now_ms(),
    )
    frame.slot = runtime.board.acquire(key, spec.timeout_s)
    if runtime.flusher is not None:
        runtime.flusher.track(
            id(frame),
            key,
            run.run,
            runtime.worker_id,
            runtime.executor,
            frame.started_at_ms,
        )
    return frame


def close_frame(frame: Frame) -> None:
    """The attempt's code is over: no deadline, never marked running again."""
    runtime = process()
    if runtime.flusher is not None:
        runtime.flusher.untrack(id(frame))
    runtime.board.release(frame.slot)


_current: contextvars.ContextVar[Frame | None] = contextvars.ContextVar(
    "cairn_frame", default=None
)


def current() -> Frame:
    """The call whose code is running, or SDKUsageError outside one."""
    frame = _current.get()
    if frame is None:
        raise errors.SDKUsageError(
            "Cairn functions can only be called inside a request: start one with "
            "run_local_application(...), and note that threads you start do not "
            "inherit the request context"
        )
    return frame


def current_or_none() -> Frame | None:
    """The running call, or None."""
    return _current.get()


def enter(frame: Frame) -> contextvars.Token[Frame | None]:
    """Make ``frame`` the running call."""
    return _current.set(frame)


def leave(token: contextvars.Token[Frame | None]) -> None:
    """Undo ``enter``."""
    _current.reset(token)


@dataclass(eq=False)
class Process:
    """What the executor process this code runs in provides."""

    store: Store
    worker_id: str
    executor: int
    board: DeadlineBoard
    flusher: Flusher | None = None
    clock: _clock.Clock = _clock.SYSTEM
    #: runs claimed calls here, committing fast successes together; returns the
    #: seconds their code took (set by whoever builds the process: the driver)
    run_batch: Callable[[list[ClaimedCall]], float] | None = None
    #: the functions this process serves: a waiting caller runs its pending
    #: children only of those (None: any)
    scope: ClaimScope | None = None
    #: requests that a commit here ended, read back in it for the engine that
    #: waits for them (``ClaimedCall.awaited``); the executor sends them on
    ended: list[RequestRecord] = field(default_factory=list)


_process: Process | None = None


def install(runtime: Process | None) -> None:
    """Called once in each executor process (and by tests of the core)."""
    global _process
    _process = runtime


def process() -> Process:
    """The executor process's runtime."""
    if _process is None:
        raise errors.SDKUsageError(
            "Cairn functions can only be called inside a request: start one with "
            "run_local_application(...)"
        )
    return _process
