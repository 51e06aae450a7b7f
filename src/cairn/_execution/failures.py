"""Failures, encoded in one place: how an attempt's failure is recorded, how the
supervisor records the attempts it ended, and what a caller sees for a record.

A record is a JSON-able dict (type, message, traceback text, function name, and a
flag for the kinds a caller must tell apart); every path that writes one builds it
here, and every path that raises one reads it here.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from dataclasses import dataclass
from typing import Any

from cairn import errors
from cairn.store import CallFailure, CallKey, CallRecord, RequestOutcome
from cairn.types import CallStatus, FailureReason, RequestStatus

# Frames of files under this directory are Cairn's, not the user's: recorded
# tracebacks leave them out, so a user reads where *their* code failed.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# A recorded message or traceback keeps this much of its start and of its end: an
# exception that carries a whole response body is recorded, not refused by the
# store, and read back without loading megabytes.
MAX_ERROR_TEXT_CHARS = 64 * 1024
# What is kept of the message when the store refuses even a bounded record.
_CUT_MESSAGE_CHARS = 1000


class Diverged(BaseException):
    """Strict replay saw a different path; user code must not catch this."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(Exception):
    """The store refused a call's checkpoint for good; the call failed with
    ``error`` (recorded), as it would end the same way if run again."""

    def __init__(self, error: errors.SerializationError) -> None:
        super().__init__(str(error))
        self.error = error


def user_traceback(exc: BaseException) -> str:
    """``exc``'s traceback text without Cairn's own frames (chained ones too)."""
    summary = traceback.TracebackException.from_exception(exc)
    _strip(summary, set())
    return "".join(summary.format())


def _strip(summary: traceback.TracebackException, seen: set[int]) -> None:
    if id(summary) in seen:
        return
    seen.add(id(summary))
    summary.stack = traceback.StackSummary.from_list(
        [f for f in summary.stack if not f.filename.startswith(_PACKAGE_DIR)]
    )
    for nested in (summary.__cause__, summary.__context__):
        if nested is not None:
            _strip(nested, seen)


def _bounded(text: str) -> str:
    if len(text) <= MAX_ERROR_TEXT_CHARS:
        return text
    half = MAX_ERROR_TEXT_CHARS // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n[... {cut:,} characters cut ...]\n{text[-half:]}"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as error:  # a __str__ that fails must not lose the failure
        return f"<str() of the {type(exc).__qualname__} failed: {error!r}>"


def error_record(exc: BaseException, function: str) -> dict[str, Any]:
    """How a failed attempt is recorded: type, message, the user's traceback
    (each bounded to ``MAX_ERROR_TEXT_CHARS``)."""
    data: dict[str, Any] = {
        "type": type(exc).__qualname__,
        "message": _bounded(_message(exc)),
        "traceback": _bounded(user_traceback(exc)),
        "function_name": function,
    }
    if isinstance(exc, errors.RequestError):
        data["request_error"] = True
        data["message"] = _bounded(exc.message)
        data["function_name"] = exc.function_name or function
    if isinstance(exc, errors.FunctionTimeout):
        data["timeout"] = True
    if isinstance(exc, Diverged):
        data["type"] = "ReplayMismatch"
        data["message"] = exc.message
        data["replay_mismatch"] = True
    return data


def cut(failure: CallFailure, refused: Exception) -> CallFailure:
    """``failure`` with its record cut to its type, flags and the start of its
    message, saying why: what is recorded when the store refuses the whole one."""
    error = {
        **{k: v for k, v in failure.error.items() if k not in ("message", "traceback")},
        "message": (
            f"{str(failure.error.get('message', ''))[:_CUT_MESSAGE_CHARS]} "
            f"[cut: the store refused the whole failure record: {refused}]"
        ),
        "traceback": None,
    }
    outcome = failure.request_outcome
    if outcome is not None and outcome.error is not None:
        outcome = dataclasses.replace(outcome, error=error)
    return dataclasses.replace(failure, error=error, request_outcome=outcome)


@dataclass(frozen=True)
class Ended:
    """An attempt the supervisor ended (its process killed or dead): its record."""

    error: dict[str, Any]
    #: the attempt's outcome as stored: ``timed_out``, ``out_of_memory``,
    #: ``crashed`` or ``interrupted``
    outcome: str
    #: the call's status if no retry follows
    status: CallStatus
    #: whether it uses up one of the call's attempts under its retry policy (an
    #: attempt stopped for another call's sake does not)
    counts: bool = True


def timed_out(key: CallKey, timeout_s: float) -> Ended:
    """A call ran past its deadline and its process was killed."""
    return Ended(
        {
            "type": "FunctionTimeout",
            "message": (
                f"{key.function} ran for {timeout_s:g}s without finishing or "
                "reporting progress; the attempt was stopped"
            ),
            "traceback": None,
            "function_name": key.function,
            "timeout": True,
        },
        "timed_out",
        CallStatus.TIMED_OUT,
    )


def out_of_memory(key: CallKey, resident_bytes: int, limit_bytes: int) -> Ended:
    """A call's process grew past the call's memory limit and was killed."""
    return Ended(
        {
            "type": "OutOfMemory",
            "message": (
                f"the process running {key.function} used "
                f"{resident_bytes / 2**20:.0f} MiB, over its limit of "
                f"{limit_bytes / 2**20:.0f} MiB; it was stopped"
            ),
            "traceback": None,
            "function_name": key.function,
        },
        "out_of_memory",
        CallStatus.FAILED,
    )


def process_died(key: CallKey, how: str) -> Ended:
    """The process running a call died (``how``: a signal or an exit code)."""
    return Ended(
        {
            "type": "ProcessDied",
            "message": f"the process running {key.function} died ({how})",
            "traceback": None,
            "function_name": key.function,
        },
        "crashed",
        CallStatus.FAILED,
    )


def interrupted(key: CallKey, cause: str) -> Ended:
    """A call whose process was stopped for another call's failure (``cause``), while
    it ran or waited on its children: it runs again, and the attempt does not count."""
    return Ended(
        {
            "type": "Interrupted",
            "message": (
                f"the process running {key.function} was stopped ({cause}); "
                "it runs again, its finished calls served from their checkpoints"
            ),
            "traceback": None,
            "function_name": key.function,
        },
        "interrupted",
        CallStatus.PENDING,
        counts=False,
    )


def error_of(record: CallRecord) -> BaseException:
    """What a caller gets, at its call site, for a call that failed for good."""
    error = record.error or {}
    message = error.get("message", "")
    if error.get("replay_mismatch"):
        return Diverged(message)
    if error.get("request_error"):
        request_error = errors.RequestError(message)
        request_error.function_name = error.get("function_name")
        return request_error
    kind = (
        errors.FunctionTimeout
        if record.status is CallStatus.TIMED_OUT
        else errors.FunctionError
    )
    what = "timed out" if kind is errors.FunctionTimeout else "failed"
    return kind(
        f"function {record.function!r} {what} after {record.run_attempts} attempt(s): "
        f"{error.get('type', 'Error')}: {message}",
        function_name=record.function,
        call_id=record.id,
        error_type=error.get("type"),
        error_message=message,
        traceback=error.get("traceback"),
        attempts=record.run_attempts,
    )


def final_error(
    key: CallKey, exc: BaseException, record: CallRecord | None
) -> BaseException:
    """What the caller of an inline call gets once its last attempt failed with ``exc``:
    a RequestError as itself, anything else as the recorded failure."""
    if isinstance(exc, errors.RequestError):
        if exc.function_name is None:
            exc.function_name = key.function
        return exc
    if record is not None:
        return error_of(record)
    return errors.FunctionError(f"function {key.function!r} failed: {exc}")


def retryable(exc: BaseException) -> bool:
    """RequestError and values that cannot be serialized are never retried."""
    return not isinstance(
        exc,
        errors.RequestError
        | errors.SerializationError
        | errors.SDKUsageError
        | Diverged,
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
