"""The supervisor: a pool of executor processes, their deadlines, crashes and retries.

One engine serves ``run_local_application``, replays and (next) ``cairn worker`` and
``cairn serve``: the same code path everywhere.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from cairn import _executor, _limits, _registry, errors
from cairn._deadlines import DeadlineBoard
from cairn._execution import attempts, clock, failures, frames
from cairn._wake import Wake
from cairn.observability import _metrics, _supervision
from cairn.store import (
    CallKey,
    ClaimScope,
    RequestRecord,
    Store,
    open_store,
    redact_url,
    this_host,
)
from cairn.types import CallStatus, RequestStatus

logger = logging.getLogger(__name__)

_TICK_MIN_S = 0.001
_TICK_MAX_S = 0.005
_HEARTBEAT_EVERY_S = 2.0
_CANCEL_CHECK_EVERY_S = 0.1
_SERVE_TICK_S = 0.005
_MEMORY_CHECK_EVERY_S = 0.05


class _StopNow(BaseException):
    """A second SIGTERM/SIGINT: leave at once."""


# An extra executor (started because every other one only waits) that has held no
# work for this long is stopped again.
_EXTRA_IDLE_S = 5.0


def default_concurrency() -> int:
    """``CAIRN_CONCURRENCY``, else the number of cores (at least 2)."""
    value = os.environ.get("CAIRN_CONCURRENCY")
    if value:
        try:
            number = int(value)
        except ValueError:
            raise errors.SDKUsageError(
                f"CAIRN_CONCURRENCY must be an int, got {value!r}"
            ) from None
        if number < 1:
            raise errors.SDKUsageError(f"CAIRN_CONCURRENCY must be >= 1, got {number}")
        return number
    return max(2, os.cpu_count() or 2)


@dataclass(eq=False)
class _Executor:
    index: int
    pid: int
    board: DeadlineBoard
    extra: bool
    started_at: float
    memory_checked_at: float = 0.0


class Engine:
    """Runs requests durably on one machine with a pool of executor processes."""

    def __init__(
        self,
        store_url: str,
        *,
        concurrency: int | None = None,
        serving: bool = False,
        functions: frozenset[str] | None = None,
    ) -> None:
        """``serving``: a worker that runs any request of the functions it has
        loaded (``functions``, when given, of those alone); otherwise the engine
        of one process's own requests (``run_local_application``), which never
        runs another's."""
        self.store_url = store_url
        self.serving = serving
        self.functions = functions
        self.store: Store = open_store(store_url)
        self.concurrency = (
            concurrency if concurrency is not None else default_concurrency()
        )
        if self.concurrency < 1:
            raise errors.SDKUsageError(
                f"concurrency must be >= 1, got {self.concurrency}"
            )
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.scope = self._scope()
        self._executors: dict[int, _Executor] = {}
        self._next_index = 0
        # What the executors inherited when forked: new functions, a changed
        # environment or working directory need new executors to be seen.
        self._setting: tuple[int, dict[str, str], str] | None = None
        self._last_cancel_check = 0.0
        self._last_heartbeat = 0.0
        self._max_executors = self.concurrency * 4 + 8
        self._owner_pid = os.getpid()
        self._closed = False
        self._wake = Wake()
        self._draining = False
        self._unreleased: set[int] = set()
        self._store_lost = False
        self._respawn_not_before = 0.0
        self._store_backoff_s = 0.0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Fork the executors (again, if functions, env or working dir changed since)."""
        setting = (_registry.generation, dict(os.environ), os.getcwd())
        if self._setting == setting and self._executors:
            return
        self._stop_all()
        self._setting = setting
        self._heartbeat(force=True)
        self.scope = self._scope()
        if self.serving:
            served = self.scope.functions or ()
            self.store.serve_functions(
                self.worker_id,
                {name: _registry.code_version(name) or "" for name in served},
            )
        for _ in range(self.concurrency):
            self._spawn(extra=False)

    def close(self) -> None:
        """Stop every executor and hand its calls back (idempotent)."""
        if self._closed or not self.owned_by_this_process():
            return
        self._closed = True
        self._stop_all()
        self._wake.close()
        if self.serving:
            self.store.serve_functions(self.worker_id, {})
        # Taken for dead at once: the calls and requests it leaves are taken over.
        self.store.heartbeat(self.worker_id, this_host(), os.getpid(), 0.0)
        self.store.close()

    def _scope(self) -> ClaimScope:
        """What this engine's executors claim: functions it has loaded (those of
        ``functions`` alone, if given), of requests it owns, or of nobody's."""
        loaded = _registry.names()
        if self.functions is not None:
            missing = sorted(self.functions - set(loaded))
            if missing:
                raise errors.SDKUsageError(
                    f"no function named {', '.join(map(repr, missing))} in the loaded "
                    f"code (it has {', '.join(loaded) or 'none'})"
                )
            loaded = tuple(sorted(self.functions))
        return ClaimScope(
            owner=None if self.serving else self.worker_id, functions=loaded
        )

    def owned_by_this_process(self) -> bool:
        """False in a forked child, which must not touch its parent's executors."""
        return self._owner_pid == os.getpid()

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _spawn(self, *, extra: bool) -> _Executor:
        index = self._next_index
        self._next_index += 1
        board = DeadlineBoard()
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                code = _executor.main(
                    self.store_url,
                    self.worker_id,
                    index,
                    board,
                    parent,
                    self._wake,
                    self.scope,
                )
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        executor = _Executor(index, pid, board, extra, time.monotonic())
        self._executors[index] = executor
        return executor

    def _kill_all(self) -> None:
        for executor in list(self._executors.values()):
            self._kill(executor)
            executor.board.close()
        self._executors.clear()
        self._setting = None

    def _stop_all(self) -> None:
        for executor in list(self._executors.values()):
            self._kill(executor)
        self._executors.clear()
        self.store.release_calls(self.worker_id, None)

    def _kill(self, executor: _Executor) -> None:
        try:
            os.kill(executor.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(executor.pid, 0)
        except ChildProcessError:
            pass

    # -- running ----------------------------------------------------------------------------
    def run_until_finished(
        self,
        request_id: str,
        on_tick: Callable[[], None] | None = None,
        timeout_s: float | None = None,
    ) -> RequestRecord:
        """Supervise until the request reaches a final state; return its record."""
        self.start()
        self._wake.executors.poke()  # the request (or its replay) is new work
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        tick = _TICK_MIN_S
        token = -1
        while True:
            acted = self.supervise_once()
            current = self.store.change_token()
            if current != token or acted:
                # Commits change the token all the time while work runs; the tick is
                # not reset for them, so that supervising stays cheap (measured: a few
                # percent of a core, down from ~30%).
                token = current
                record = self.store.get_request(request_id)
                if record is None:
                    raise errors.RequestNotFound(f"no request with id {request_id!r}")
                if record.owner is None and not self.serving:
                    # Taken for dead (a heartbeat late under load) while running
                    # it: its executors claim only what it owns.
                    self.store.adopt_request(request_id, self.worker_id)
                if record.status.finished:
                    if record.status is RequestStatus.CANCELLED:
                        self._last_cancel_check = 0.0
                        self._stop_cancelled(time.monotonic())
                    return record
            if on_tick is not None:
                on_tick()
            if deadline is not None and time.monotonic() > deadline:
                raise errors.TimeoutError(
                    f"request {request_id!r} did not finish in {timeout_s}s"
                )
            self._wake.engine.wait(tick)
            tick = min(tick * 2, _TICK_MAX_S)

    def supervise_once(self) -> bool:
        """One pass over the executors: crashes, deadlines, starvation. True if it acted."""
        acted = False
        now = time.monotonic()
        self._release_pending()
        for executor in list(self._executors.values()):
            try:
                pid, status = os.waitpid(executor.pid, os.WNOHANG)
            except ChildProcessError:  # reaped already (killed by us)
                pid, status = executor.pid, 0
            if pid:
                self._on_exit(executor, status)
                acted = True
                continue
            expired = executor.board.expired(now)
            if expired:
                self._kill(executor)
                self._on_timeout(executor, expired)
                acted = True
            elif self._over_memory(executor, now):
                acted = True
        self._top_up(now)
        acted = self._balance(now) or acted
        acted = self._stop_cancelled(now) or acted
        self._heartbeat()
        return acted

    def supervise_safely(self) -> None:
        """``supervise_once`` that survives a failing store: log, back off, go on.

        Nothing is marked done while the store fails: executors that cannot
        commit stop, and their calls run again once the store is back.
        """
        try:
            if self._store_lost:
                self._recover_store()
            self.supervise_once()
            self._store_backoff_s = 0.0
        except errors.StoreReplaced as error:
            # Every connection (ours, the executors') points at a file that is gone:
            # stop them all, and start over on whatever store is at the URL now.
            logger.error(
                "store %s: %s; restarting on it", redact_url(self.store_url), error
            )
            self._store_lost = True
            self._kill_all()
        except (errors.StoreError, sqlite3.Error, OSError) as error:
            self._store_backoff_s = min(max(self._store_backoff_s * 2, 0.1), 5.0)
            logger.warning(
                "store %s failed (%s); retrying in %.1fs",
                redact_url(self.store_url),
                error,
                self._store_backoff_s,
            )
            time.sleep(self._store_backoff_s)

    def _recover_store(self) -> None:
        fresh = open_store(self.store_url)
        self.store.close()
        self.store = fresh
        self._store_lost = False
        self._unreleased.clear()  # those calls were in the store that is gone
        self.start()

    def serve(
        self, *, grace_s: float = 30.0, stop: Callable[[], bool] | None = None
    ) -> int:
        """Run as a long-lived worker until SIGTERM/SIGINT (or ``stop()``).

        The first signal stops claiming: executors finish the call they hold,
        within ``grace_s``, then exit; whatever is still running after that is
        handed back for another worker. A second signal exits at once. Returns
        the process exit code (0 after a clean drain).
        """
        signals: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            signals.append(signum)
            if len(signals) > 1:
                raise _StopNow

        previous = {
            s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            logger.info(
                "worker %s serving %s with %d executor(s)",
                self.worker_id,
                redact_url(self.store_url),
                self.concurrency,
            )
            while not signals and not (stop is not None and stop()):
                self.supervise_safely()
                time.sleep(_SERVE_TICK_S)
            logger.info("worker %s draining (grace %.0fs)", self.worker_id, grace_s)
            self._drain(grace_s)
            return 0
        except _StopNow:
            logger.warning("worker %s: second signal, stopping now", self.worker_id)
            return 1
        finally:
            self.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _drain(self, grace_s: float) -> None:
        self._draining = True
        for executor in self._executors.values():
            try:
                os.kill(executor.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while self._executors and time.monotonic() < deadline:
            self.supervise_safely()
            time.sleep(_SERVE_TICK_S)

    def _stop_cancelled(self, now: float) -> bool:
        """Kill executors running calls of cancelled requests (like a timeout)."""
        if now - self._last_cancel_check < _CANCEL_CHECK_EVERY_S:
            return False
        self._last_cancel_check = now
        doomed = self.store.executors_of_cancelled(self.worker_id)
        for index in doomed:
            executor = self._executors.get(index)
            if executor is not None:
                logger.info("stopping executor %d: its request was cancelled", index)
                self._kill(executor)
                self._replace(executor)
        return bool(doomed)

    def _on_timeout(
        self, executor: _Executor, expired: list[tuple[CallKey, float]]
    ) -> None:
        ended = [
            (key, failures.timed_out(key, timeout_s)) for key, timeout_s in expired
        ]
        cause = f"{expired[0][0].function} timed out"
        self._retire(executor, ended, cause)

    def _over_memory(self, executor: _Executor, now: float) -> bool:
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
        resident = _limits.resident_bytes(executor.pid)
        if resident is None or resident <= min(limits):
            return False
        self._kill(executor)
        ended = [
            (key, failures.out_of_memory(key, resident, min(limits))) for key in running
        ]
        self._retire(executor, ended, "it ran out of memory")
        return True

    def _on_exit(self, executor: _Executor, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        ended: list[tuple[CallKey, failures.Ended]] = []
        cause = None
        if code == _executor.EXIT_INFRASTRUCTURE:
            # The store is failing: start executors again only after a backoff.
            self._store_backoff_s = min(max(self._store_backoff_s * 2, 0.1), 5.0)
            self._respawn_not_before = time.monotonic() + self._store_backoff_s
            logger.warning(
                "executor %d stopped: the store is unusable; retrying in %.1fs",
                executor.index,
                self._store_backoff_s,
            )
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
        executor: _Executor,
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
            self._replace(executor)

    def _replace(self, executor: _Executor) -> None:
        """Forget a dead executor and hand its calls back; ``_top_up`` starts another."""
        if self._executors.pop(executor.index, None) is None:
            return
        _metrics.process_died(executor.pid)
        executor.board.close()
        self._unreleased.add(executor.index)
        self._release_pending()

    def _release_pending(self) -> None:
        """Hand back the calls of dead executors (kept for later if the store fails)."""
        for index in sorted(self._unreleased):
            released = self.store.release_calls(self.worker_id, index)
            self._unreleased.discard(index)
            if released:
                logger.info("re-queued %d call(s) of executor %d", len(released), index)

    def _top_up(self, now: float) -> None:
        """Keep ``concurrency`` regular executors, unless draining or backing off."""
        if self._draining or now < self._respawn_not_before:
            return
        regular = sum(1 for e in self._executors.values() if not e.extra)
        for _ in range(self.concurrency - regular):
            self._spawn(extra=False)

    def _end_attempt(
        self, key: CallKey, how: failures.Ended, started_at_ms: float | None = None
    ) -> None:
        """Record an attempt the supervisor ended (timeout, crash) and its retry."""
        record = self.store.get_call(key.id)
        if record is not None and record.status is CallStatus.SUCCEEDED:
            return
        request = self.store.get_request(key.request_id)
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
        failure = ended.ended(how)
        self.store.record_failure(failure)
        _supervision.attempt_ended(
            self.store, key, run.application, failure, how.outcome, clock.now_ms()
        )

    def _balance(self, now: float) -> bool:
        """Start an extra executor when work is queued, none is free to take it, and
        fewer than ``concurrency`` are running code: a caller that only waits on its
        children does not count, so it never holds their slot (at most
        ``concurrency`` + the waiting callers, and ``_max_executors`` in all)."""
        executors = list(self._executors.values())
        working = [e for e in executors if e.board.waiting_since() == 0]
        free = any(e.board.busy_since() == 0 for e in working)
        if (
            not free
            and len(working) < self.concurrency
            and len(executors) < self._max_executors
            and self.store.runnable_exists(clock.now_ms(), self.scope)
        ):
            self._spawn(extra=True)
            return True
        for executor in executors:
            if (
                executor.extra
                and executor.board.busy_since() == 0
                and now - executor.started_at > _EXTRA_IDLE_S
            ):
                os.kill(executor.pid, signal.SIGTERM)
                executor.extra = True
                executor.started_at = now + 3600  # ask only once
        return False

    def _heartbeat(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_heartbeat >= _HEARTBEAT_EVERY_S:
            self._last_heartbeat = now
            self.store.check()
            wall_ms = clock.now_ms()
            self.store.heartbeat(self.worker_id, this_host(), os.getpid(), wall_ms)
            # A worker (or a run_local_application process) that died left its calls
            # "running": take them over, so that its requests finish here.
            released = self.store.release_dead_workers(wall_ms)
            if released:
                logger.warning("took over %d call(s) of dead workers", released)
