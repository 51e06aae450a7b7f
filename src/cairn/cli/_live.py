"""The live progress display of ``cairn run`` and ``cairn requests replay``.

The engine calls ``tick()`` every few milliseconds from its supervising loop; the
display reads new events and redraws at most ten times a second, on that thread
(no refresh thread: executors are forked while it runs).
"""

from __future__ import annotations

import contextlib
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from cairn._store_cache import borrowed
from cairn.store import Store

_REFRESH_EVERY_S = 0.1


def last_event_seq(store: Store, request_id: str) -> int:
    """The sequence number of the request's latest event (0 if none)."""
    return store.last_event_seq(request_id)


class LiveProgress:
    """A progress bar fed by ``RequestProgressUpdated`` events, plus call counts."""

    def __init__(self, request_id: str, store_url: str, console: Console) -> None:
        self._request_id = request_id
        self._store_url = store_url
        self._console = console
        self._store: Store | None = None
        self._borrowed = contextlib.ExitStack()
        self._seq = 0
        self._done = 0
        self._failed_attempts = 0
        self._next_at = 0.0
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[steps]}"),
            TextColumn("[dim]{task.fields[calls]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            auto_refresh=False,
            disable=not console.is_terminal,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> LiveProgress:
        # The thread's store (the one the request was submitted with): no other
        # connection, no second schema check.
        with contextlib.ExitStack() as stack:
            self._store = stack.enter_context(borrowed(self._store_url))
            self._seq = last_event_seq(self._store, self._request_id)
            self._borrowed = stack.pop_all()
        self._task = self._progress.add_task("starting", total=None, steps="", calls="")
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
        self._store = None
        self._borrowed.__exit__(exc_type, exc, tb)

    def tick(self) -> None:
        """Called from the engine's loop: redraw when a tenth of a second has passed."""
        now = time.monotonic()
        if now < self._next_at or self._store is None or self._task is None:
            return
        self._next_at = now + _REFRESH_EVERY_S
        for event in self._store.list_events(self._request_id, self._seq):
            self._seq = event.seq
            payload = event.payload
            if event.kind == "RequestProgressUpdated":
                step, total = payload.get("step"), payload.get("total")
                self._progress.update(
                    self._task,
                    description=str(payload.get("message") or ""),
                    completed=float(step or 0),
                    total=float(total) if total else None,
                    steps=f"{step}/{total}" if total else "",
                )
            elif event.kind == "FunctionRunCompleted":
                self._done += 1
            elif event.kind == "FunctionRunAttemptFailed":
                self._failed_attempts += 1
        calls = f"{self._done} call(s) done"
        if self._failed_attempts:
            calls += f", {self._failed_attempts} attempt(s) failed"
        self._progress.update(self._task, calls=calls)
        self._progress.refresh()
