"""The executor process: claims dispatched calls and runs them; user code runs here.

Executors are forked from the supervisor ahead of time (fork costs ~2 ms, spawn
~80 ms), so a request never waits for a process to start, and a call's code can
be stopped by killing its process, even when it is stuck in C.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from typing import cast

from cairn import _faults, _registry, _schedules, errors, observability
from cairn._execution import dispatch, frames, scheduler, storage
from cairn.observability import _metrics, _tracing
from cairn.store import ClaimScope, Store, open_store

from ._deadlines import DeadlineBoard
from ._wake import HandOff, Wake

logger = logging.getLogger(__name__)

# Exit code of an executor that stopped for an infrastructure reason (the store is
# unusable): its calls are released without counting an attempt against them.
EXIT_INFRASTRUCTURE = 3
_IDLE_POLL_MIN_S = 0.0005
_IDLE_POLL_MAX_S = 0.005
_PR_SET_PDEATHSIG = 1
_HAND_OFF_WAIT_S = 1.0


def main(
    store_url: str,
    worker_id: str,
    index: int,
    board: DeadlineBoard,
    parent_pid: int,
    wake: Wake,
    scope: ClaimScope,
    hand_off: HandOff,
) -> int:
    """Run the claim loop until the supervisor goes away or asks us to stop."""
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    # Ctrl-C is the supervisor's to handle; it stops us itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop)
    _die_with_parent()
    observability.install_log_context(frames.current_or_none)
    if os.getppid() != parent_pid:
        return 0
    try:
        store = cast(Store, storage.GuardedStore(open_store(store_url)))
        flusher = storage.Flusher(store.reopen())
    except errors.CairnError as error:
        logger.error("cairn executor %d: cannot open the store: %s", index, error)
        return EXIT_INFRASTRUCTURE
    try:
        _faults.arm(os.environ.get("CAIRN_FAULTS"), parent_pid)
    except errors.SDKUsageError as error:
        logger.error("cairn executor %d: %s", index, error)
        return EXIT_INFRASTRUCTURE
    flusher.start()
    runtime = frames.Process(
        store,
        worker_id,
        index,
        board,
        flusher,
        run_batch=dispatch.run_batch,
        scope=scope,
    )
    frames.install(runtime)
    if _metrics.M is not None:
        _metrics.M.executors.set(1)
    caps = _registry.concurrency_caps()
    limits = _registry.flow_limits()
    ticker = _schedules.Ticker(store, scope)
    delay = _IDLE_POLL_MIN_S
    while not stopping and os.getppid() == parent_pid:
        try:
            now = runtime.clock.now_ms()
            # Marked busy while idle: the supervisor chose this executor for a
            # hand-off and is creating the request; wait for it rather than
            # take queued work that would hold it up.
            claimed = hand_off.take(_HAND_OFF_WAIT_S if board.busy_since() else 0.0)
            if claimed is None and store.runnable_exists(now, scope):
                claimed = store.claim_call(
                    worker_id, index, now, caps=caps, scope=scope, limits=limits
                )
            if claimed is None:
                if ticker.tick():
                    continue  # it started requests of schedules: claim them
                _tracing.flush()  # idle: export the spans of what just ran
                wake.executors.wait(delay, hand_off.read_fd)
                delay = min(delay * 2, _IDLE_POLL_MAX_S)
                continue
            delay = _IDLE_POLL_MIN_S
            board.set_busy(True)
            if _metrics.M is not None:
                _metrics.M.executors_busy.set(1)
            scheduler.run_group(
                claimed, lambda: not stopping and os.getppid() == parent_pid
            )
            wake.ended.send_all(runtime.ended)
            runtime.ended.clear()
            wake.engine.poke()  # a request may have finished
            board.set_busy(False)
            if _metrics.M is not None:
                _metrics.M.executors_busy.set(0)
        except (storage.StoreLost, errors.StoreError) as error:
            if _metrics.M is not None:
                _metrics.M.store_errors.labels(type(error).__name__).inc()
            logger.error("cairn executor %d: store error: %s", index, error)
            return EXIT_INFRASTRUCTURE
        except Exception:
            logger.exception("cairn executor %d stopped on an unexpected error", index)
            return EXIT_INFRASTRUCTURE
    _tracing.flush()
    return 0


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the supervisor dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
