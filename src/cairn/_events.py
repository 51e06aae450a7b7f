"""Events in Tensorlake's externally tagged format (``{"RequestFinished": {...}}``).

A leaf: the store appends these events and imports this module, never the
other way round."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from cairn import _values
from cairn.types import RequestStatus

# Outputs up to this size travel inside the RequestFinished event, as Tensorlake does.
INLINE_OUTPUT_LIMIT_BYTES = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """An event to append to a request's stream (seq is assigned by the store)."""

    kind: str
    payload: dict[str, Any]
    created_at_ms: float


class Outcome(Protocol):
    """How a request ended, as ``request_finished`` reads it (the store's
    ``RequestOutcome``)."""

    @property
    def status(self) -> RequestStatus: ...

    @property
    def output(self) -> bytes | None: ...

    @property
    def failure_reason(self) -> str | None: ...

    @property
    def error(self) -> dict[str, Any] | None: ...


def iso(ms: float) -> str:
    """An RFC 3339 timestamp (UTC, microseconds) for a time in epoch milliseconds."""
    seconds, micros = divmod(round(ms * 1000), 1_000_000)
    return f"{_utc_second(seconds)}.{micros:06d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    # Every event carries a timestamp; formatting the second once, not per event,
    # takes this off the per-call path.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def outcome_json(status: RequestStatus, failure_reason: str | None) -> Any:
    """Tensorlake's outcome: null while running, "success", or {"failure": reason}."""
    if status is RequestStatus.SUCCEEDED:
        return "success"
    if status in (RequestStatus.FAILED, RequestStatus.CANCELLED):
        return {"failure": failure_reason or "unknown"}
    return None


def request_started(
    request_id: str, application: str, run: int, now_ms: float
) -> Event:
    """The event of a run of a request starting."""
    return Event(
        kind="RequestStarted",
        payload={
            "request_id": request_id,
            "application_name": application,
            "run": run,
            "created_at": iso(now_ms),
        },
        created_at_ms=now_ms,
    )


def request_finished(
    request_id: str, application: str, outcome: Outcome, now_ms: float
) -> Event:
    """The last event of a request's stream."""
    payload: dict[str, Any] = {
        "request_id": request_id,
        "application_name": application,
        "outcome": outcome_json(outcome.status, outcome.failure_reason),
        "created_at": iso(now_ms),
    }
    if outcome.output is not None:
        output: dict[str, Any] = {
            "path": f"/applications/{application}/requests/{request_id}/output",
            "content_encoding": "application/json",
        }
        file = _values.file_from_json_bytes(outcome.output)
        if file is not None:
            # A File output is raw bytes: the path serves them, no JSON body here.
            output["content_encoding"] = file.content_type
        elif len(outcome.output) <= INLINE_OUTPUT_LIMIT_BYTES:
            output["body"] = json.loads(outcome.output)
        payload["output"] = output
    if outcome.error is not None:
        payload["error"] = outcome.error
    return Event(kind="RequestFinished", payload=payload, created_at_ms=now_ms)


def function_run(
    kind: str,
    request_id: str,
    function: str,
    call_id: str,
    now_ms: float,
    **extra: Any,
) -> Event:
    """FunctionRunCreated / FunctionRunCompleted / FunctionRunRetried."""
    payload = {
        "request_id": request_id,
        "function_name": function,
        "function_run_id": call_id,
        "created_at": iso(now_ms),
        **extra,
    }
    return Event(kind=kind, payload=payload, created_at_ms=now_ms)


# A checkpoint's two events, which the store reads from the call's row
# (``calls.event_seq``) instead of keeping rows of their own.
CREATED = "FunctionRunCreated"
COMPLETED = "FunctionRunCompleted"


def call_created(
    request_id: str,
    function: str,
    call_id: str,
    started_at_ms: float,
    parent_id: str | None,
    call_kind: str,
) -> Event:
    """A call's first attempt in a run started (written with its first outcome)."""
    return function_run(
        CREATED,
        request_id,
        function,
        call_id,
        started_at_ms,
        parent_function_run_id=parent_id,
        call_kind=call_kind,
    )


def call_succeeded(
    request_id: str,
    function: str,
    call_id: str,
    started_at_ms: float,
    finished_at_ms: float,
    attempt: int,
) -> Event:
    """A call's attempt that started at ``started_at_ms`` succeeded."""
    return function_run(
        COMPLETED,
        request_id,
        function,
        call_id,
        finished_at_ms,
        outcome="success",
        attempt=attempt,
        duration_ms=round(finished_at_ms - started_at_ms, 3),
    )


def wire(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The externally tagged form sent to clients."""
    return {kind: payload}
