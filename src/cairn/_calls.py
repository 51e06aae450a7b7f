"""One function call run in the caller's process: look up, attempt, retry, commit.

This is the hot path of a sequential agent: a checkpoint hit costs one indexed
read; a call that runs costs one transaction (its start is only written if it
runs long, by the Flusher).
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from cairn import _events, _frames, _retry, _serialization, errors
from cairn._registry import FunctionSpec
from cairn.store import (
    CallFailure,
    CallKey,
    CallRecord,
    CallSuccess,
    Event,
    RequestOutcome,
)
from cairn.types import CallStatus, FailureReason, RequestStatus


def now_ms() -> float:
    """Wall-clock milliseconds."""
    return time.time() * 1000.0


def error_dict(exc: BaseException, function: str) -> dict[str, Any]:
    """How a failure is recorded: type, message, traceback text."""
    data: dict[str, Any] = {
        "type": type(exc).__qualname__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
        "function_name": function,
    }
    if isinstance(exc, errors.RequestError):
        data["request_error"] = True
        data["message"] = exc.message
        data["function_name"] = exc.function_name or function
    if isinstance(exc, errors.FunctionTimeout):
        data["timeout"] = True
    if isinstance(exc, _frames.Diverged):
        data["type"] = "ReplayMismatch"
        data["message"] = exc.message
        data["replay_mismatch"] = True
    return data


def raise_recorded(record: CallRecord) -> None:
    """Raise, at the call site, the failure recorded for a call."""
    error = record.error or {}
    message = error.get("message", "")
    if error.get("replay_mismatch"):
        raise _frames.Diverged(message)
    if error.get("request_error"):
        request_error = errors.RequestError(message)
        request_error.function_name = error.get("function_name")
        raise request_error
    kind = (
        errors.FunctionTimeout
        if record.status is CallStatus.TIMED_OUT
        else errors.FunctionError
    )
    what = "timed out" if kind is errors.FunctionTimeout else "failed"
    raise kind(
        f"function {record.function!r} {what} after {record.run_attempts} attempt(s): "
        f"{error.get('type', 'Error')}: {message}",
        function_name=record.function,
        call_id=record.id,
        error_type=error.get("type"),
        error_message=message,
        traceback=error.get("traceback"),
        attempts=record.run_attempts,
    )


def failure_reason(error: dict[str, Any], status: CallStatus) -> FailureReason:
    """The request failure reason for an application call's final error."""
    if error.get("replay_mismatch"):
        return FailureReason.REPLAY_MISMATCH
    if error.get("request_error"):
        return FailureReason.REQUEST_ERROR
    if status is CallStatus.TIMED_OUT or error.get("type") == "FunctionTimeout":
        return FailureReason.FUNCTION_TIMEOUT
    if error.get("type") == "OutOfMemory":
        return FailureReason.OUT_OF_MEMORY
    if error.get("type") == "InternalError":
        return FailureReason.INTERNAL_ERROR
    return FailureReason.FUNCTION_ERROR


def failed_outcome(error: dict[str, Any], status: CallStatus) -> RequestOutcome:
    """The request's end when its application call failed for good."""
    reason = failure_reason(error, status)
    return RequestOutcome(
        status=RequestStatus.FAILED, failure_reason=reason, error=error
    )


class Attempts:
    """Bookkeeping of one call across its attempts in this run."""

    def __init__(
        self,
        key: CallKey,
        spec: FunctionSpec,
        run: _frames.RequestRun,
        record: CallRecord | None,
    ) -> None:
        self.key = key
        self.spec = spec
        self.run = run
        fresh = (
            record is None or record.run < run.run or record.status is CallStatus.STALE
        )
        self.failed = 0 if fresh or record is None else record.run_attempts
        self.attempt = 0 if record is None else record.attempts
        self.not_before_ms = 0.0 if fresh or record is None else record.not_before_ms
        self.policy = (
            _retry.RetryPolicy()
            if key.kind == "reduce"
            else spec.retry_policy(run.application)
        )
        self.args_blob: bytes | None = None
        self.started_at_ms = 0.0

    def begin(self) -> None:
        """An attempt starts."""
        self.attempt += 1
        self.started_at_ms = now_ms()

    def success(
        self, output: bytes, frame: _frames.Frame, outcome: RequestOutcome | None = None
    ) -> CallSuccess:
        """The commit of a successful attempt."""
        finished = now_ms()
        served, self.run.served = self.run.served, []
        state = (
            _serialization.dumps(frame.state_writes, "request state")
            if frame.state_writes
            else None
        )
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
            events=[
                *self._created(first=self.failed == 0),
                _events.function_run(
                    "FunctionRunCompleted",
                    self.key.request_id,
                    self.key.function,
                    self.key.id,
                    finished,
                    outcome="success",
                    attempt=self.attempt,
                    duration_ms=round(finished - self.started_at_ms, 3),
                ),
            ],
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
            _events.function_run(
                "FunctionRunCreated",
                self.key.request_id,
                self.key.function,
                self.key.id,
                self.started_at_ms or now_ms(),
                parent_function_run_id=self.key.parent_id,
                call_kind=self.key.kind,
            )
        ]

    def failure(
        self, exc: BaseException, *, retryable: bool
    ) -> tuple[CallFailure, float | None]:
        """The record of a failed attempt, and the delay before the next (None: final)."""
        self.failed += 1
        error = error_dict(exc, self.key.function)
        delay_s: float | None = None
        if retryable and self.policy.allows_another(self.failed):
            delay_s = (
                exc.delay_s
                if isinstance(exc, errors.RetryAfter)
                else self.policy.delay_s(self.failed)
            )
        return self.record(error, delay_s, outcome="failure"), delay_s

    def record(
        self,
        error: dict[str, Any],
        delay_s: float | None,
        *,
        outcome: str,
        status: CallStatus | None = None,
    ) -> CallFailure:
        """A CallFailure for this attempt."""
        finished = now_ms()
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
            events=events,
            served_ids=served,
            served_run=self.run.run,
            request_outcome=(
                failed_outcome(error, status)
                if final and self.key.kind == "app"
                else None
            ),
        )


def retryable(exc: BaseException) -> bool:
    """RequestError and values that cannot be serialized are never retried."""
    return not isinstance(
        exc, errors.RequestError | errors.SerializationError | errors.SDKUsageError
    )
