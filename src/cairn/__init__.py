"""Cairn: durable execution for Python agents and data pipelines.

The API is the one of ``tensorlake.applications``: change the import line of a
Tensorlake program to ``from cairn import ...`` and it runs durably here.
"""

from __future__ import annotations

from cairn._context import FunctionProgress, Headers, RequestContext, RequestState
from cairn._decorators import (
    ApplicationCapability,
    Function,
    Retries,
    application,
    cls,
    function,
)
from cairn._execution.futures import RETURN_WHEN, Future
from cairn._execution.waits import sleep, wait_for_signal
from cairn._limits import RateLimit
from cairn._remote import RemoteRequest, run_remote_application
from cairn._request import (
    Request,
    get_request,
    run_local_application,
)
from cairn._request_ops import AttemptInfo, CallInfo
from cairn._schedules import Schedule, Schedules
from cairn._values import File, HttpBody, Image, Logger
from cairn.errors import (
    CairnError,
    DeserializationError,
    FunctionError,
    FunctionTimeout,
    InternalError,
    RemoteAPIError,
    ReplayMismatch,
    RequestError,
    RequestFailed,
    RequestFinished,
    RequestNotFinished,
    RequestNotFound,
    RequestRunning,
    RetryAfter,
    ScheduleNotFound,
    SDKUsageError,
    SerializationError,
    StoreError,
    StoreReplaced,
    TensorlakeError,
    TensorlakeException,
    TimeoutError,
)
from cairn.types import CallStatus, FailureReason, RequestStatus

__version__ = "0.1.0"

__all__ = [
    "RETURN_WHEN",
    "ApplicationCapability",
    "AttemptInfo",
    "CairnError",
    "CallInfo",
    "CallStatus",
    "DeserializationError",
    "FailureReason",
    "File",
    "Function",
    "FunctionError",
    "FunctionProgress",
    "FunctionTimeout",
    "Future",
    "Headers",
    "HttpBody",
    "Image",
    "InternalError",
    "Logger",
    "RateLimit",
    "RemoteAPIError",
    "RemoteRequest",
    "ReplayMismatch",
    "Request",
    "RequestContext",
    "RequestError",
    "RequestFailed",
    "RequestFinished",
    "RequestNotFinished",
    "RequestNotFound",
    "RequestRunning",
    "RequestState",
    "RequestStatus",
    "Retries",
    "RetryAfter",
    "SDKUsageError",
    "Schedule",
    "ScheduleNotFound",
    "Schedules",
    "SerializationError",
    "StoreError",
    "StoreReplaced",
    "TensorlakeError",
    "TensorlakeException",
    "TimeoutError",
    "application",
    "cls",
    "function",
    "get_request",
    "run_local_application",
    "run_remote_application",
    "sleep",
    "wait_for_signal",
]
