"""Public exception hierarchy, shaped like ``tensorlake.applications``'.

::

    TensorlakeException(Exception)     Tensorlake's bases: ``except TensorlakeError``
    └── TensorlakeError                catches every Cairn error, as in Tensorlake
        └── CairnError
            (below)

    CairnError
    ├── RequestFailed(reason)          request ended in failure; str() is the reason
    │   └── RequestError(message)      raised on purpose by user code; never retried
    ├── FunctionError(message)         a child call failed for good (seen by its caller)
    │   └── FunctionTimeout            ...because it ran past its deadline
    ├── TimeoutError                   a wait's deadline ran out (also builtins.TimeoutError)
    ├── RequestNotFinished             output() of a request that is still running
    ├── SDKUsageError                  the API was used wrongly
    │   ├── RequestRunning             replay of a request whose run is not over
    │   └── RequestFinished            a signal to a request that has finished
    ├── SerializationError             a value could not be pickled / JSON-encoded
    ├── DeserializationError           a stored or sent value could not be decoded
    ├── ReplayMismatch                 strict replay saw the code take a different path
    ├── RemoteAPIError(status, msg)    the HTTP API answered with an error
    ├── StoreError                     the store is unusable (not Cairn's, newer schema, locked)
    │   └── StoreReplaced              its file was deleted or replaced while in use
    ├── RequestNotFound                no request with that id
    ├── ScheduleNotFound               no schedule with that id
    └── InternalError                  a bug or an infrastructure failure

    RetryAfter(delay_s)                raise to ask for a retry after a given delay

Each class has a stable ``code`` that the CLI prints and the server maps to a status.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "CairnError",
    "DeserializationError",
    "FunctionError",
    "FunctionTimeout",
    "InternalError",
    "RemoteAPIError",
    "ReplayMismatch",
    "RequestError",
    "RequestFailed",
    "RequestFinished",
    "RequestNotFinished",
    "RequestNotFound",
    "RequestRunning",
    "RetryAfter",
    "SDKUsageError",
    "ScheduleNotFound",
    "SerializationError",
    "StoreError",
    "StoreReplaced",
    "TensorlakeError",
    "TensorlakeException",
    "TimeoutError",
]


class TensorlakeException(Exception):
    """The base of Tensorlake's exceptions, kept so programs that catch it run."""


class TensorlakeError(TensorlakeException):
    """The base of Tensorlake's errors; every Cairn error is one."""


class CairnError(TensorlakeError):
    """A Cairn error."""

    code = "cairn_error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else (type(self).__doc__ or "")
        super().__init__(self.message)


class RequestFailed(CairnError):
    """The request failed.

    ``str()`` is the failure reason (``"function_error"``, ...), as Tensorlake's.
    What failed is kept on the exception: ``details`` (also added as a note, so
    a traceback shows it), and, when the failure was recorded, ``function_name``,
    ``error_type``, ``error_message`` and ``traceback`` (the failing call's).
    """

    code = "request_failed"

    def __init__(
        self,
        reason: str = "unknown",
        details: str | None = None,
        *,
        function_name: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        traceback: str | None = None,
    ) -> None:
        self.reason = reason
        super().__init__(reason)
        self.details = details
        self.function_name = function_name
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback
        if details:
            self.add_note(details)


class RequestError(RequestFailed):
    """User code failed the request on purpose; such a failure is never retried.

    ``str()`` and ``message`` are the message, verbatim (Tensorlake's contract).
    """

    code = "request_error"

    def __init__(self, message: str = "") -> None:
        self.reason = "request_error"
        CairnError.__init__(self, message)
        self.details = None
        self.error_type = None
        self.error_message = None
        self.traceback = None
        # The function that raised it first; filled in by the engine.
        self.function_name: str | None = None


class FunctionError(CairnError):
    """A function call failed for good.

    Carries the child's exception type, message and traceback text, so that a
    caller's ``try/except`` can log it and degrade gracefully.
    """

    code = "function_error"

    def __init__(
        self,
        message: str = "Function call failed",
        *,
        function_name: str | None = None,
        call_id: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        traceback: str | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.function_name = function_name
        self.call_id = call_id
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_function_error, (type(self), self.message, self.__dict__))


def _rebuild_function_error(
    cls: type[FunctionError], message: str, state: dict[str, Any]
) -> FunctionError:
    error = cls(message)
    error.__dict__.update(state)
    return error


class FunctionTimeout(FunctionError):
    """A function call ran past its deadline on every attempt."""

    code = "function_timeout"


class TimeoutError(CairnError, builtins.TimeoutError):
    """Timed out."""

    code = "timeout"


class RequestNotFinished(CairnError):
    """The request has not finished yet."""

    code = "request_not_finished"


class SDKUsageError(CairnError):
    """The Cairn API was used in a way it does not support."""

    code = "sdk_usage_error"


class RequestRunning(SDKUsageError):
    """A run of the request is still pending or running: it cannot be replayed now.

    ``run`` is the number of that run. Wait for it to finish, or cancel it.
    """

    code = "request_running"

    def __init__(
        self, message: str | None = None, *, request_id: str = "", run: int = 0
    ) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.run = run


class RequestFinished(SDKUsageError):
    """The request has finished: it waits for nothing any more."""

    code = "request_finished"


class SerializationError(CairnError):
    """A value could not be serialized."""

    code = "serialization_error"


class DeserializationError(CairnError):
    """A value could not be deserialized."""

    code = "deserialization_error"


class ReplayMismatch(CairnError):
    """Strict replay found that the code took a different path than the recorded run."""

    code = "replay_mismatch"


class RemoteAPIError(CairnError):
    """The Cairn server answered with an error."""

    code = "remote_api_error"

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(f"{status_code}: {message}")


class StoreError(CairnError):
    """The store cannot be used."""

    code = "store_error"


class StoreReplaced(StoreError):
    """The store's file was deleted or replaced under a running process."""

    code = "store_replaced"


class RequestNotFound(CairnError):
    """No request with that id."""

    code = "request_not_found"


class ScheduleNotFound(CairnError):
    """No schedule with that id."""

    code = "schedule_not_found"


class InternalError(CairnError):
    """Cairn failed internally."""

    code = "internal_error"


class RetryAfter(Exception):
    """Ask for this call to be retried after ``delay_s`` seconds (a 429's Retry-After)."""

    def __init__(self, delay_s: float, message: str = "") -> None:
        self.delay_s = float(delay_s)
        super().__init__(message or f"retry after {delay_s:g}s")
