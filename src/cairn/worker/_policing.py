"""Policing the executors: deadlines, memory, cancels and deaths, each of which
ends the attempts an executor held; what ended is recorded, and the executor
is replaced.

A deadline passed (``DeadlineBoard``) or a memory limit passed kills the
executor, even when its call is stuck in C; a cancelled request's executors are
killed alike. The supervisor asks on every pass (``check``); each answer says
whether it acted.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from cairn import _registry
from cairn._execution import attempts, clock, failures, frames
from cairn.observability import _metrics
from cairn.store import CallKey
from cairn.types import CallStatus

from . import _executor

if TYPE_CHECKING:
    from ._supervisor import Executor, Supervisor

logger = logging.getLogger(__name__)

_CANCEL_CHECK_EVERY_S = 0.1
_MEMORY_CHECK_EVERY_S = 0.05
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _resident_bytes(pid: int) -> int | None:
    """Resident set size of a process (Linux /proc), or None where unknown."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


class Police:
    """The policing of one supervisor's executors."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self._last_cancel_check = 0.0

    def check(self, executor: Executor, now: float) -> bool:
        """An executor that exited, passed a deadline or its memory limit is
        retired (its attempts recorded) and replaced; True if it was."""
        try:
            pid, status = os.waitpid(executor.pid, os.WNOHANG)
        except ChildProcessError:  # reaped already (killed by us)
            pid, status = executor.pid, 0
        if pid:
            self._on_exit(executor, status)
            return True
        expired = executor.board.expired(now)
        if expired:
            self._supervisor.kill(executor)
            self._on_timeout(executor, expired)
            return True
        return self._over_memory(executor, now)

    def stop_cancelled(self, now: float, *, at_once: bool = False) -> bool:
        """Kill executors running calls of cancelled requests (like a timeout)."""
        if not at_once and now - self._last_cancel_check < _CANCEL_CHECK_EVERY_S:
            return False
        self._last_cancel_check = now
        supervisor = self._supervisor
        doomed = supervisor.store.executors_of_cancelled(supervisor.worker_id)
        for index in doomed:
            executor = supervisor.executors.get(index)
            if executor is not None:
                logger.info("stopping executor %d: its request was cancelled", index)
                supervisor.kill(executor)
                supervisor.replace(executor)
        return bool(doomed)

    def _on_timeout(
        self, executor: Executor, expired: list[tuple[CallKey, float]]
    ) -> None:
        ended = [
            (key, failures.timed_out(key, timeout_s)) for key, timeout_s in expired
        ]
        if _metrics.M is not None:
            for key, _ in expired:
                _metrics.M.timeouts.labels(key.function).inc()
        cause = f"{expired[0][0].function} timed out"
        self._retire(executor, ended, cause)

    def _over_memory(self, executor: Executor, now: float) -> bool:
        """Stop an executor whose resident memory passed its running call's limit."""
        if now - executor.memory_checked_at < _MEMORY_CHECK_EVERY_S:
            return False
        executor.memory_checked_at = now
        running = executor.board.executing()
        limits = [
            spec.memory_limit_bytes
            for key in running
            if (spec := _registry.find(key.function)) is not None
            and spec.memory_limit_bytes is not None
        ]
        if not limits:
            return False
        resident = _resident_bytes(executor.pid)
        if resident is None or resident <= min(limits):
            return False
        self._supervisor.kill(executor)
        ended = [
            (key, failures.out_of_memory(key, resident, min(limits))) for key in running
        ]
        if _metrics.M is not None:
            for key in running:
                _metrics.M.oom_kills.labels(key.function).inc()
        self._retire(executor, ended, "it ran out of memory")
        return True

    def _on_exit(self, executor: Executor, status: int) -> None:
        _metrics.process_died(executor.pid)
        code = os.waitstatus_to_exitcode(status)
        ended: list[tuple[CallKey, failures.Ended]] = []
        cause = None
        if code == _executor.EXIT_INFRASTRUCTURE:
            self._supervisor.back_off_spawning(executor)
        elif code != 0:
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            ended = [
                (key, failures.process_died(key, how))
                for key in executor.board.executing()
            ]
            cause = f"it died: {how}"
        self._retire(executor, ended, cause)

    def _retire(
        self,
        executor: Executor,
        ended: list[tuple[CallKey, failures.Ended]],
        cause: str | None = None,
    ) -> None:
        """Record the attempts a dead executor ended, then replace it (always).

        With a ``cause`` (a timeout, a crash, memory), every other call of the
        process, running or waiting on its children (the failed call's callers),
        gets an ``interrupted`` attempt: what ran is recorded as it happened, and
        its next attempt is numbered after it.
        """
        try:
            # The board is read before anything is written: it dies with the executor.
            started = dict(executor.board.occupied()) if cause else {}
            ended_keys = {key.id for key, _ in ended}
            if cause:
                ended += [
                    (key, failures.interrupted(key, cause))
                    for key in started
                    if key.id not in ended_keys
                ]
            wall_ms, now_s = clock.now_ms(), time.monotonic()
            for key, how in ended:
                began = started.get(key)
                began_ms = None if began is None else wall_ms - (now_s - began) * 1000
                self._end_attempt(key, how, began_ms)
        finally:
            self._supervisor.replace(executor)

    def _end_attempt(
        self, key: CallKey, how: failures.Ended, started_at_ms: float | None = None
    ) -> None:
        """Record an attempt the supervisor ended (timeout, crash) and its retry."""
        store = self._supervisor.store
        record = store.get_call(key.id)
        if record is not None and record.status is CallStatus.SUCCEEDED:
            return
        request = store.get_request(key.request_id)
        if request is None or request.status.finished:
            return
        spec = _registry.find(key.function) or _registry.FunctionSpec(
            name=key.function, fn=lambda: None, module=""
        )
        run = frames.RequestRun(
            key.request_id,
            request.run,
            request.strict_replay,
            application=request.application,
        )
        ended = attempts.Attempts(key, spec, run, record)
        ended.begin()
        if started_at_ms is not None:
            ended.started_at_ms = started_at_ms
        elif record is not None and record.started_at_ms:
            ended.started_at_ms = record.started_at_ms
        store.record_failure(ended.ended(how))
        # A caller parked on this call's Future may go on once its calls ended.
        store.wake_parents([key.group_id or ""], clock.now_ms())
