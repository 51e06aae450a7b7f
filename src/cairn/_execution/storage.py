"""The executor's view of the store: failures under user code stop the process, and
calls that run long are made visible as running by a background thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from cairn import errors
from cairn.store import CallFailure, CallKey, RunningCall, Store, StoreRefused

from . import failures

# How long an in-process call runs before it is made visible as "running" in the
# store; shorter calls cost no extra write (their start is recorded with their end).
VISIBLE_AFTER_S = 0.1


class StoreLost(BaseException):
    """The store failed under running user code: the executor stops, and its calls
    run again once the store is back. A BaseException, so that user code's
    ``except Exception`` cannot swallow a checkpoint that was never committed."""


# Writes of what user code made: refused for good, they fail it, not the executor.
_REFUSED_TO_CALLER = frozenset({"commit_success", "commit_successes", "set_progress"})


class GuardedStore:
    """The executor's store: any store failure becomes ``StoreLost``, but a write of
    what user code made (a checkpoint, progress) refused for good
    (``StoreRefused``): a refused checkpoint fails its call, refused progress is
    an error its code may catch."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if not callable(attribute):
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except StoreRefused as error:
                if name in _REFUSED_TO_CALLER:
                    raise  # the store is fine: the write's caller decides
                raise StoreLost(f"{name}: {error}") from error
            except (errors.StoreError, sqlite3.Error, OSError) as error:
                raise StoreLost(f"{name}: {error}") from error

        setattr(self, name, guarded)  # looked up once per method
        return guarded

    def record_failure(self, failure: CallFailure) -> None:
        """Record a failed attempt. One the store refuses for good (a record too
        large for it, say) is recorded again cut down, so that the call ends
        instead of stopping its executor and running again without end."""
        try:
            try:
                self._store.record_failure(failure)
            except StoreRefused as refused:
                self._store.record_failure(failures.cut(failure, refused))
        except (errors.StoreError, sqlite3.Error, OSError) as error:
            raise StoreLost(f"record_failure: {error}") from error


# A tracked call's key, run, worker id, executor and start (ms).
_Fields = tuple[CallKey, int, str, int, float]


def _running(fields: _Fields) -> RunningCall:
    key, run, worker_id, executor, started_at_ms = fields
    return RunningCall(
        key=key,
        run=run,
        worker_id=worker_id,
        executor=executor,
        started_at_ms=started_at_ms,
    )


class Flusher(threading.Thread):
    """Makes calls that run longer than ``VISIBLE_AFTER_S`` visible as running.

    Short calls cost one write (their checkpoint); this thread writes the start of
    long ones, so other processes (and the supervisor, on a timeout) see them.
    """

    def __init__(self, store: Store) -> None:
        super().__init__(name="cairn-flusher", daemon=True)
        self._store = store
        self._lock = threading.Lock()
        # token -> (the call's fields, monotonic time since it runs; 0: marked)
        self._tracked: dict[int, tuple[_Fields, float]] = {}
        # Not ``_stop``: that is a method of Thread, which ``join`` calls.
        self._stopping = threading.Event()

    def track(
        self,
        token: int,
        key: CallKey,
        run: int,
        worker_id: str,
        executor: int,
        started_at_ms: float,
    ) -> None:
        """Start watching a call (``token`` names it for ``untrack``).

        Its ``RunningCall`` is built only if it runs long: most calls end first.
        """
        fields = (key, run, worker_id, executor, started_at_ms)
        with self._lock:
            self._tracked[token] = (fields, time.monotonic())

    def untrack(self, token: int) -> None:
        """Stop watching a call; after this returns, it is never marked running again."""
        with self._lock:
            self._tracked.pop(token, None)

    def run(self) -> None:
        while not self._stopping.wait(VISIBLE_AFTER_S / 2):
            with self._lock:
                now = time.monotonic()
                due = [
                    (token, fields)
                    for token, (fields, since) in self._tracked.items()
                    if since and now - since >= VISIBLE_AFTER_S
                ]
                if not due:
                    continue
                try:
                    self._store.mark_running([_running(f) for _, f in due])
                except (errors.CairnError, sqlite3.Error, OSError):
                    continue  # the store is failing; the next pass tries again
                for token, fields in due:
                    self._tracked[token] = (fields, 0.0)

    def stop(self) -> None:
        """Stop the thread."""
        self._stopping.set()
