"""Public enums and small value types."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CallStatus", "FailureReason", "RequestStatus"]


class RequestStatus(StrEnum):
    """Where a request is in its life."""

    #: created, waiting for a worker to start its application call
    PENDING = "pending"
    #: its application call (or a call it left running) is in progress
    RUNNING = "running"
    #: finished with an output
    SUCCEEDED = "succeeded"
    #: finished with a failure reason
    FAILED = "failed"
    #: cancelled; nothing more runs for it
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Whether the request has reached a final state."""
        return self in (
            RequestStatus.SUCCEEDED,
            RequestStatus.FAILED,
            RequestStatus.CANCELLED,
        )


class CallStatus(StrEnum):
    """Where one function call is in its life."""

    #: waiting to run (first attempt, or a retry after its backoff)
    PENDING = "pending"
    #: an attempt is in progress
    RUNNING = "running"
    #: its output is committed: a checkpoint
    SUCCEEDED = "succeeded"
    #: failed for good in its latest run
    FAILED = "failed"
    #: ran past its deadline on its last allowed attempt
    TIMED_OUT = "timed_out"
    #: stopped by a cancel
    CANCELLED = "cancelled"
    #: invalidated by a replay ``from_call``; runs again when reached
    STALE = "stale"

    @property
    def final(self) -> bool:
        """Whether this call will not run again in its current run."""
        return self in (
            CallStatus.SUCCEEDED,
            CallStatus.FAILED,
            CallStatus.TIMED_OUT,
            CallStatus.CANCELLED,
        )


class FailureReason(StrEnum):
    """Why a request failed (Tensorlake's names, plus ``replay_mismatch``)."""

    #: the application function raised an exception
    FUNCTION_ERROR = "function_error"
    #: a call ran past its deadline on every attempt
    FUNCTION_TIMEOUT = "function_timeout"
    #: user code raised RequestError
    REQUEST_ERROR = "request_error"
    #: Cairn failed
    INTERNAL_ERROR = "internal_error"
    #: the request was cancelled
    CANCELLED = "cancelled"
    #: a call ran out of memory on every attempt
    OUT_OF_MEMORY = "out_of_memory"
    #: a strict replay saw a different path
    REPLAY_MISMATCH = "replay_mismatch"
