"""Bookkeeping of one call across its attempts in a run: what each commit writes.

A call's attempt numbers count over every run of its request (the store keeps the
latest); ``failed`` counts this run's failed attempts, which the retry policy reads.
"""

from __future__ import annotations

from typing import Any

from cairn import _events, _registry, _retry, _serialization, errors
from cairn._registry import FunctionSpec
from cairn.store import CallFailure, CallKey, CallRecord, CallSuccess, Event
from cairn.types import CallStatus

from . import clock as _clock
from . import failures
from .frames import Frame, RequestRun

_NO_RETRIES = _retry.RetryPolicy()  # frozen: one instance serves every reduce


class Attempts:
    """One call's attempts in this run: numbers, timings, the records they commit."""

    def __init__(
        self,
        key: CallKey,
        spec: FunctionSpec,
        run: RequestRun,
        record: CallRecord | None,
        clock: _clock.Clock = _clock.SYSTEM,
    ) -> None:
        self.key = key
        self.spec = spec
        self.run = run
        self.clock = clock
        fresh = (
            record is None or record.run < run.run or record.status is CallStatus.STALE
        )
        self.failed = 0 if fresh or record is None else record.run_attempts
        self.attempt = 0 if record is None else record.attempts
        self.not_before_ms = 0.0 if fresh or record is None else record.not_before_ms
        self.policy = (
            _NO_RETRIES if key.kind == "reduce" else spec.retry_policy(run.application)
        )
        self.args_blob: bytes | None = None
        self.started_at_ms = 0.0

    def begin(self) -> None:
        """An attempt starts."""
        self.attempt += 1
        self.started_at_ms = self.clock.now_ms()

    def success(
        self,
        output: bytes,
        frame: Frame,
        outcome: Any = None,
    ) -> CallSuccess:
        """The commit of a successful attempt (``outcome``: the request's end, if any)."""
        finished = self.clock.now_ms()
        served, self.run.served = self.run.served, []
        state = (
            _serialization.dumps(frame.state_writes, "request state")
            if frame.state_writes
            else None
        )
        # The common case, this run's first attempt succeeding: the store reads
        # both events from the call's row (as _events builds them from it).
        from_row = self.failed == 0 and bool(self.started_at_ms)
        events: list[Event] = []
        if not from_row:
            events = [
                *self._created(first=self.failed == 0),
                _events.call_succeeded(
                    self.key.request_id,
                    self.key.function,
                    self.key.id,
                    self.started_at_ms,
                    finished,
                    self.attempt,
                ),
            ]
        return CallSuccess(
            key=self.key,
            run=self.run.run,
            attempt=self.attempt,
            run_attempts=self.failed + 1,
            args=self.args_blob,
            output=output,
            state_writes=state,
            started_at_ms=self.started_at_ms,
            finished_at_ms=finished,
            code_version=_registry.code_version(self.key.function),
            events=events,
            events_from_row=from_row,
            served_ids=served,
            served_run=self.run.run,
            request_outcome=outcome,
        )

    def _created(self, *, first: bool) -> list[Event]:
        """FunctionRunCreated, written with the first attempt's outcome in this run:
        the same transaction, so a call costs no extra write for it."""
        if not first:
            return []
        return [
            _events.call_created(
                self.key.request_id,
                self.key.function,
                self.key.id,
                self.started_at_ms or self.clock.now_ms(),
                self.key.parent_id,
                self.key.kind,
            )
        ]

    def failure(
        self, exc: BaseException, *, retryable: bool
    ) -> tuple[CallFailure, float | None]:
        """The record of a failed attempt, and the delay before the next (None: final)."""
        self.failed += 1
        error = failures.error_record(exc, self.key.function)
        delay_s: float | None = None
        if retryable and self.policy.allows_another(self.failed):
            delay_s = (
                exc.delay_s
                if isinstance(exc, errors.RetryAfter)
                else self.policy.delay_s(self.failed)
            )
        return self.record(error, delay_s, outcome="failure"), delay_s

    def ended(self, ended: failures.Ended) -> CallFailure:
        """The record of an attempt the supervisor ended, retried by the policy (at
        once, and not counted, when it was stopped for another call's sake)."""
        if not ended.counts:
            return self.record(ended.error, 0.0, outcome=ended.outcome)
        self.failed += 1
        delay_s = (
            self.policy.delay_s(self.failed)
            if self.policy.allows_another(self.failed)
            else None
        )
        return self.record(
            ended.error,
            delay_s,
            outcome=ended.outcome,
            status=ended.status if delay_s is None else None,
        )

    def record(
        self,
        error: dict[str, Any],
        delay_s: float | None,
        *,
        outcome: str,
        status: CallStatus | None = None,
    ) -> CallFailure:
        """A CallFailure for this attempt."""
        finished = self.clock.now_ms()
        final = delay_s is None
        if status is None:
            status = CallStatus.FAILED if final else CallStatus.PENDING
        served, self.run.served = self.run.served, []
        events = [
            *self._created(first=self.failed == 1),
            _events.function_run(
                "FunctionRunCompleted" if final else "FunctionRunAttemptFailed",
                self.key.request_id,
                self.key.function,
                self.key.id,
                finished,
                outcome="failure",
                attempt=self.attempt,
                error_type=error.get("type"),
                error_message=error.get("message"),
                retry_delay_s=delay_s,
            ),
        ]
        return CallFailure(
            key=self.key,
            run=self.run.run,
            attempt=self.attempt,
            run_attempts=self.failed,
            status=status,
            outcome=outcome,
            error=error,
            args=self.args_blob,
            started_at_ms=self.started_at_ms or None,
            finished_at_ms=finished,
            not_before_ms=finished + (delay_s or 0.0) * 1000.0,
            retry_delay_s=delay_s,
            code_version=_registry.code_version(self.key.function),
            events=events,
            served_ids=served,
            served_run=self.run.run,
            request_outcome=(
                failures.failed_outcome(error, status)
                if final and self.key.kind == "app"
                else None
            ),
        )
