"""The supervisor: a pool of executor processes, spawned, killed and replaced.

Executors are forked ahead of time and claim calls themselves; the supervisor
keeps ``concurrency`` of them (and extras while every other one only waits on
children), hands the calls of a dead one back, heartbeats for them all, and has
``Police`` retire the ones that died, overran a deadline or their memory, or run
a cancelled request. A store that fails is survived (``supervise_safely``).
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import signal
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass

from cairn import _registry, errors
from cairn._execution import clock
from cairn.observability import _metrics
from cairn.store import ClaimScope, Store, open_store, redact_url, this_host

from . import _executor
from ._deadlines import DeadlineBoard
from ._policing import Police
from ._wake import HandOff, Wake

logger = logging.getLogger(__name__)

_HEARTBEAT_EVERY_S = 2.0
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
    return max(2, _cores())


def _environment() -> dict[bytes, bytes]:
    """The process's environment as it stands, asked at every local run: a copy of
    ``os.environ``'s own store (bytes on POSIX) costs ~1 us, where
    ``dict(os.environ)`` decodes every entry (~100 us)."""
    return dict(os.environ._data)  # type: ignore[attr-defined]


@functools.cache
def _cores() -> int:
    # Asked on every local run; os.cpu_count() reads /sys each time.
    return os.cpu_count() or 2


@dataclass(eq=False)
class Executor:
    """One executor process, as its supervisor knows it."""

    index: int
    pid: int
    board: DeadlineBoard
    extra: bool
    started_at: float
    hand_off: HandOff
    memory_checked_at: float = 0.0


class Supervisor:
    """Keeps a pool of executor processes on one store."""

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
        self.executors: dict[int, Executor] = {}
        self.police = Police(self)
        self._next_index = 0
        # What the executors inherited when forked: new functions, a changed
        # environment or working directory need new executors to be seen.
        self._setting: tuple[int, dict[bytes, bytes], str] | None = None
        self._last_heartbeat = 0.0
        self._max_executors = self.concurrency * 4 + 8
        self._owner_pid = os.getpid()
        self._closed = False
        self.wake = Wake()
        self.draining = False
        self._unreleased: set[int] = set()
        self._store_lost = False
        self._respawn_not_before = 0.0
        self._store_backoff_s = 0.0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Fork the executors (again, if functions, env or working dir changed since)."""
        setting = (_registry.generation, _environment(), os.getcwd())
        if self._setting == setting and self.executors:
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
        # Where the store listens for commits (PostgreSQL), executors forked after
        # it started read this process's count instead of each listening.
        self.store.change_token()
        for _ in range(self.concurrency):
            self._spawn(extra=False)

    def close(self) -> None:
        """Stop every executor and hand its calls back (idempotent)."""
        if self._closed or not self.owned_by_this_process():
            return
        self._closed = True
        self._stop_all()
        self.wake.close()
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

    # -- the pool -----------------------------------------------------------------------
    def _spawn(self, *, extra: bool) -> Executor:
        index = self._next_index
        self._next_index += 1
        board = DeadlineBoard()
        hand_off = HandOff()
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                hand_off.in_child()
                code = _executor.main(
                    self.store_url,
                    self.worker_id,
                    index,
                    board,
                    parent,
                    self.wake,
                    self.scope,
                    hand_off,
                )
            except BaseException:
                logger.exception("executor %d stopped on an unexpected error", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        hand_off.in_parent()
        executor = Executor(index, pid, board, extra, time.monotonic(), hand_off)
        self.executors[index] = executor
        return executor

    def _kill_all(self) -> None:
        for executor in list(self.executors.values()):
            self.kill(executor)
            executor.board.close()
            executor.hand_off.close()
        self.executors.clear()
        self._setting = None

    def _stop_all(self) -> None:
        for executor in list(self.executors.values()):
            self.kill(executor)
            executor.hand_off.close()
        self.executors.clear()
        self.store.release_calls(self.worker_id, None)

    def kill(self, executor: Executor) -> None:
        """SIGKILL an executor and reap it."""
        try:
            os.kill(executor.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(executor.pid, 0)
        except ChildProcessError:
            pass
        _metrics.process_died(executor.pid)

    def replace(self, executor: Executor) -> None:
        """Forget a dead executor and hand its calls back; ``_top_up`` starts another."""
        if self.executors.pop(executor.index, None) is None:
            return
        executor.board.close()
        executor.hand_off.close()
        self._unreleased.add(executor.index)
        self._release_pending()

    def back_off_spawning(self, executor: Executor) -> None:
        """An executor stopped because the store is failing: start executors
        again only after a backoff."""
        self._store_backoff_s = min(max(self._store_backoff_s * 2, 0.1), 5.0)
        self._respawn_not_before = time.monotonic() + self._store_backoff_s
        logger.warning(
            "executor %d stopped: the store is unusable; retrying in %.1fs",
            executor.index,
            self._store_backoff_s,
        )

    def _release_pending(self) -> None:
        """Hand back the calls of dead executors (kept for later if the store fails)."""
        for index in sorted(self._unreleased):
            released = self.store.release_calls(self.worker_id, index)
            self._unreleased.discard(index)
            if released:
                logger.info("re-queued %d call(s) of executor %d", len(released), index)

    def _top_up(self, now: float) -> None:
        """Keep ``concurrency`` regular executors, unless draining or backing off."""
        if self.draining or now < self._respawn_not_before:
            return
        regular = sum(1 for e in self.executors.values() if not e.extra)
        for _ in range(self.concurrency - regular):
            self._spawn(extra=False)

    def _balance(self, now: float) -> bool:
        """Start an extra executor when work is queued, none is free to take it, and
        fewer than ``concurrency`` are running code: a caller that only waits on its
        children does not count, so it never holds their slot (at most
        ``concurrency`` + the waiting callers, and ``_max_executors`` in all)."""
        executors = list(self.executors.values())
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

    # -- supervising --------------------------------------------------------------------
    def supervise_once(self) -> bool:
        """One pass over the executors: crashes, deadlines, starvation. True if it acted."""
        acted = False
        now = time.monotonic()
        self._release_pending()
        for executor in list(self.executors.values()):
            acted = self.police.check(executor, now) or acted
        self._top_up(now)
        acted = self._balance(now) or acted
        acted = self.police.stop_cancelled(now) or acted
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
