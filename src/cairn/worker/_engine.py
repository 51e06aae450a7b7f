"""``Engine``: a supervisor run one of two ways. As a long-lived worker
(``serve``: until a signal, then a drain), for ``cairn worker`` and ``cairn
serve``; or for one process's own requests (``run_until_finished``), for
``run_local_application``, local replays and ``cairn run``. The same executors
and the same policing either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from cairn import _registry, errors
from cairn._execution import clock
from cairn.store import CallKey, NewRequest, RequestRecord, Store, redact_url
from cairn.types import RequestStatus

from ._supervisor import Supervisor

logger = logging.getLogger(__name__)

_TICK_MIN_S = 0.001
_TICK_MAX_S = 0.005
_SERVE_TICK_S = 0.005
# While a request runs, its waiter reads it when an executor says some work ended;
# commits heard of otherwise (a cancel from elsewhere) are looked at this often.
_READ_ON_CHANGE_EVERY_S = 0.02
# Larger inputs go through the queue: a hand-off is one pipe write.
_HAND_OFF_MAX_INPUT_BYTES = 16 * 1024


class _StopNow(BaseException):
    """A second SIGTERM/SIGINT: leave at once."""


class Engine(Supervisor):
    """Runs requests durably on one machine with a pool of executor processes."""

    _choosing = threading.Lock()

    def hand_off(
        self, store: Store, request: NewRequest, root: CallKey, args: bytes
    ) -> bool:
        """Create this engine's own request with its application call claimed by
        an idle executor, and send the claim to it: the run starts at once, with
        no queue poll and no claim query. False when no executor is idle (or the
        call must be claimed under limits): nothing was written, the caller
        creates the request for the queue.

        Raises:
            RequestExists: the id is taken.
        """
        spec = _registry.find(root.function)
        if (
            self.serving
            or self.draining
            or request.owner != self.worker_id
            or spec is None
            or _registry.is_flow_limited(spec)
            or len(args) > _HAND_OFF_MAX_INPUT_BYTES
        ):
            return False
        with self._choosing:
            idle = [
                e
                for e in self.executors.values()
                if e.board.busy_since() == 0 and e.board.waiting_since() == 0
            ]
            if not idle:
                return False
            executor = min(idle, key=lambda e: e.index)
            executor.board.set_busy(True)  # taken: the next hand-off picks another
        try:
            claimed = store.create_claimed(
                request, root, args, self.worker_id, executor.index, clock.now_ms()
            )
        except BaseException:
            executor.board.set_busy(False)
            raise
        if not executor.hand_off.send(dataclasses.replace(claimed, awaited=True)):
            # Gone meanwhile: policing hands its calls (this one too) back.
            self.wake.executors.poke()
        return True

    def __enter__(self) -> Engine:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def run_until_finished(
        self,
        request_id: str,
        on_tick: Callable[[], None] | None = None,
        timeout_s: float | None = None,
        *,
        handed_off: bool = False,
    ) -> RequestRecord:
        """Supervise until the request reaches a final state; return its record.
        ``handed_off``: an executor already holds its application call."""
        self.start()
        if not handed_off:
            self.wake.executors.poke()  # the request (or its replay) is new work
        # Only a handed-off request's end comes down the pipe: one it runs again
        # (a replay) must not take a record of an earlier run still in the pipe.
        awaiting = (
            self.wake.ended.awaiting(request_id)
            if handed_off
            else contextlib.nullcontext()
        )
        with awaiting:
            return self._supervise_until_finished(
                request_id, on_tick, timeout_s, handed_off
            )

    def _supervise_until_finished(
        self,
        request_id: str,
        on_tick: Callable[[], None] | None,
        timeout_s: float | None,
        handed_off: bool,
    ) -> RequestRecord:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        token = self.store.change_token() if handed_off else -1
        poked = False
        read_at = 0.0
        tick = _TICK_MIN_S
        while True:
            acted = self.supervise_once()
            ended = self.wake.ended.reported(request_id)
            if ended is not None:
                return ended  # read in the commit that ended it: no read here
            current = self.store.change_token()
            now = time.monotonic()
            if (
                poked
                or acted
                or (current != token and now - read_at >= _READ_ON_CHANGE_EVERY_S)
            ):
                # Commits change the token all the time while work runs; the tick is
                # not reset for them, so that supervising stays cheap (measured: a few
                # percent of a core, down from ~30%).
                token, read_at = current, now
                record = self.store.get_request(request_id)
                if record is None:
                    raise errors.RequestNotFound(f"no request with id {request_id!r}")
                if record.owner is None and not self.serving:
                    # Taken for dead (a heartbeat late under load) while running
                    # it: its executors claim only what it owns.
                    self.store.adopt_request(request_id, self.worker_id)
                if record.status.finished:
                    if record.status is RequestStatus.CANCELLED:
                        self.police.stop_cancelled(time.monotonic(), at_once=True)
                    return record
            if on_tick is not None:
                on_tick()
            if deadline is not None and time.monotonic() > deadline:
                raise errors.TimeoutError(
                    f"request {request_id!r} did not finish in {timeout_s}s"
                )
            poked = self.wake.engine.wait(tick)
            tick = min(tick * 2, _TICK_MAX_S)

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
        self.draining = True
        for executor in self.executors.values():
            try:
                os.kill(executor.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while self.executors and time.monotonic() < deadline:
            self.supervise_safely()
            time.sleep(_SERVE_TICK_S)
