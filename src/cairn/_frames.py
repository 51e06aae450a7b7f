"""Per-process runtime state: the executor's handles and the stack of running calls."""

from __future__ import annotations

import contextvars
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cairn import _ids, errors
from cairn.store import CallKey, RecordedChild, RunningCall, Store

if TYPE_CHECKING:
    from cairn._deadlines import DeadlineBoard
    from cairn._registry import FunctionSpec

# How long an in-process call runs before it is made visible as "running" in the
# store; shorter calls cost no extra write (their start is recorded with their end).
VISIBLE_AFTER_S = 0.1
# Children a replaying call reads from the store per query.
_READ_AHEAD = 500


class StoreLost(BaseException):
    """The store failed under running user code: the executor stops, and its calls
    run again once the store is back. A BaseException, so that user code's
    ``except Exception`` cannot swallow a checkpoint that was never committed."""


class GuardedStore:
    """The executor's store: any store failure becomes ``StoreLost``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except (errors.StoreError, sqlite3.Error, OSError) as error:
                raise StoreLost(f"{name}: {error}") from error

        setattr(self, name, guarded)  # looked up once per method
        return guarded


class Diverged(BaseException):
    """Strict replay saw a different path; user code must not catch this."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(eq=False)
class RequestRun:
    """One run (original or replay) of one request, as seen by this process."""

    request_id: str
    run: int
    strict: bool
    application: str = ""
    served: list[str] = field(default_factory=list)
    headers: dict[str, str] | None = None


@dataclass(eq=False)
class Frame:
    """A call whose code runs in this process."""

    run: RequestRun
    key: CallKey
    spec: FunctionSpec
    timeout_s: float
    previous_id: str
    slot: int = -1
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
                raise Diverged(
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
            raise Diverged(
                f"strict replay of request {self.run.request_id!r}: {self.key.function!r} "
                f"returned after {self.next_seq} calls, but the recorded run went on to "
                f"call {missing[0].function!r} (call #{missing[0].seq})"
            )


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


class Flusher(threading.Thread):
    """Makes calls that run longer than ``VISIBLE_AFTER_S`` visible as running.

    Short calls cost one write (their checkpoint); this thread writes the start of
    long ones, so other processes (and the supervisor, on a timeout) see them.
    """

    def __init__(self, store: Store, worker_id: str, executor: int) -> None:
        super().__init__(name="cairn-flusher", daemon=True)
        self._store = store
        self._worker_id = worker_id
        self._executor = executor
        self._lock = threading.Lock()
        self._tracked: dict[int, tuple[RunningCall, float]] = {}
        self._stop = threading.Event()

    def track(self, frame: Frame) -> None:
        """Start watching a call."""
        call = RunningCall(
            key=frame.key,
            run=frame.run.run,
            worker_id=self._worker_id,
            executor=self._executor,
            started_at_ms=frame.started_at_ms,
        )
        with self._lock:
            self._tracked[id(frame)] = (call, time.monotonic())

    def untrack(self, frame: Frame) -> None:
        """Stop watching a call; after this returns, it is never marked running again."""
        with self._lock:
            self._tracked.pop(id(frame), None)

    def run(self) -> None:
        while not self._stop.wait(VISIBLE_AFTER_S / 2):
            with self._lock:
                now = time.monotonic()
                due = [
                    (key, call)
                    for key, (call, since) in self._tracked.items()
                    if since and now - since >= VISIBLE_AFTER_S
                ]
                if not due:
                    continue
                try:
                    self._store.mark_running([call for _, call in due])
                except (errors.CairnError, sqlite3.Error, OSError):
                    continue  # the store is failing; the next pass tries again
                for key, call in due:
                    self._tracked[key] = (call, 0.0)

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()


@dataclass(eq=False)
class Process:
    """What the executor process this code runs in provides."""

    store: Store
    worker_id: str
    executor: int
    board: DeadlineBoard
    flusher: Flusher


_process: Process | None = None


def install(runtime: Process) -> None:
    """Called once in each executor process."""
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
