"""The answers of the API (``_models``) built from the store's records and the
loaded code, and the opaque cursors of request lists."""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import json
import math
import pickle
import sys
import types
import typing
from typing import Any, Literal

from cairn import _events, _registry, _request_ops
from cairn.store import CallRecord, RequestRecord
from cairn.types import CallStatus, FailureReason

from . import _errors, _models

# Inputs up to this size are shown in request metadata.
_INLINE_INPUT_BYTES = 64 * 1024
# Type hints whose classes come from these modules unpickle in any client; others
# (the application's own models) are announced as Any.
_PORTABLE_MODULES = (
    "builtins",
    "typing",
    "typing_extensions",
    "types",
    "collections",
    "datetime",
    "decimal",
    "uuid",
    "pathlib",
    "ipaddress",
    "fractions",
    "pydantic",
    "annotated_types",
)


def _ms(value: float | None) -> int | None:
    return None if value is None else int(value)


# -- applications ---------------------------------------------------------------


def version(spec: _registry.FunctionSpec) -> str:
    """A version for the code of an application: a hash of its module's source."""
    module = sys.modules.get(spec.module)
    path = getattr(module, "__file__", None)
    digest = hashlib.sha256(spec.module.encode())
    if path:
        try:
            with open(path, "rb") as handle:
                digest.update(handle.read())
        except OSError:
            pass
    return digest.hexdigest()[:12]


def _application_fields(
    spec: _registry.FunctionSpec, app_version: str
) -> dict[str, Any]:
    app = spec.application
    return {
        "name": spec.name,
        "description": spec.description,
        "tags": dict(app.tags) if app else {},
        "allow": list(app.allow) if app else [],
        "version": app_version,
        "tombstoned": False,
        "created_at": None,
        "parameters": [name for name, _ in _parameters(spec)],
    }


def application(spec: _registry.FunctionSpec, app_version: str) -> _models.Application:
    """One entry of ``GET /applications`` (Tensorlake's ``Application``)."""
    return _models.Application(**_application_fields(spec, app_version))


def _parameters(spec: _registry.FunctionSpec) -> list[tuple[str, Any]]:
    try:
        hints = typing.get_type_hints(spec.fn)
    except Exception:
        hints = {}
    parameters = list(inspect.signature(spec.fn).parameters.values())
    if spec.class_name is not None:
        parameters = parameters[1:]
    return [(p.name, hints.get(p.name, Any)) for p in parameters]


def _return_hint(spec: _registry.FunctionSpec) -> Any:
    try:
        return typing.get_type_hints(spec.fn).get("return", Any)
    except Exception:
        return Any


def _portable(hint: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if hint is None or hint is Any or isinstance(hint, str | int | float | bool):
        return True
    target = hint if isinstance(hint, type) else type(hint)
    module = getattr(target, "__module__", "") or ""
    if module.split(".")[0] not in _PORTABLE_MODULES:
        return False
    return all(_portable(arg, depth + 1) for arg in typing.get_args(hint))


def _pickled_hint(hint: Any) -> str:
    if not _portable(hint):
        hint = Any
    try:
        data = pickle.dumps(hint, protocol=5)
    except Exception:
        data = pickle.dumps(Any, protocol=5)
    return base64.encodebytes(data).decode()


def manifest(spec: _registry.FunctionSpec, app_version: str) -> _models.Manifest:
    """``GET /applications/{app}``: Tensorlake's ``ApplicationManifest``.

    Tensorlake's ``run_remote_application`` reads the entrypoint to learn how to
    encode the arguments (JSON, with pickled type hints) and decode the output.
    """
    # Tensorlake pickles pydantic models of its own; a SimpleNamespace has the same
    # attributes and unpickles in any Python, with or without Cairn or Tensorlake.
    inputs = [
        types.SimpleNamespace(arg_name=name, type_hint=hint if _portable(hint) else Any)
        for name, hint in _parameters(spec)
    ]
    try:
        inputs_blob = pickle.dumps(inputs, protocol=5)
    except Exception:
        for item in inputs:
            item.type_hint = Any
        inputs_blob = pickle.dumps(inputs, protocol=5)
    return _models.Manifest(
        **_application_fields(spec, app_version),
        runtime="python",
        functions={},
        entrypoint=_models.Entrypoint(
            function_name=spec.name,
            input_serializer="json",
            inputs_base64=base64.encodebytes(inputs_blob).decode(),
            output_serializer="json",
            output_type_hints_base64=_pickled_hint(_return_hint(spec)),
        ),
    )


# -- requests -----------------------------------------------------------------------


def _summary_fields(record: RequestRecord, app_version: str | None) -> dict[str, Any]:
    return {
        "id": record.id,
        "created_at": _ms(record.created_at_ms),
        "outcome": _events.outcome_json(record.status, record.failure_reason),
        "application_version": app_version or "",
        "application_name": record.application,
        "status": str(record.status),
        "failure_reason": record.failure_reason,
        "run": record.run,
        "created_at_ms": record.created_at_ms,
        "started_at_ms": record.started_at_ms,
        "finished_at_ms": record.finished_at_ms,
    }


def request_summary(
    record: RequestRecord, app_version: str | None
) -> _models.RequestSummary:
    """One entry of a request list."""
    return _models.RequestSummary(**_summary_fields(record, app_version))


def _request_error(record: RequestRecord) -> _models.RequestErrorInfo | None:
    if record.failure_reason != FailureReason.REQUEST_ERROR:
        return None
    error = record.error or {}
    return _models.RequestErrorInfo(
        function_name=error.get("function_name") or record.application,
        message=error.get("message", ""),
    )


def request_metadata(
    record: RequestRecord,
    app_version: str | None,
    calls: list[_request_ops.CallInfo],
    records: list[CallRecord],
    waiting: str | None,
) -> _models.RequestMetadata:
    """``GET .../requests/{id}``: outcome, failure, request error, function runs."""
    groups = {call.id: call.group_id for call in records}
    children: dict[str, list[str]] = {}
    for call in calls:
        if call.parent_id is not None:
            children.setdefault(call.parent_id, []).append(call.id)
    return _models.RequestMetadata(
        **_summary_fields(record, app_version),
        request_error=_request_error(record),
        strict_replay=record.strict_replay,
        error=record.error,
        progress=record.progress,
        code_ref=record.code_ref,
        input=(
            json.loads(record.input)
            if len(record.input) <= _INLINE_INPUT_BYTES
            else None
        ),
        function_runs=[
            _function_run(call, groups.get(call.id), children.get(call.id, []))
            for call in calls
        ],
        waiting=waiting,
    )


_RUN_STATUS: dict[CallStatus, Literal["pending", "running"]] = {
    CallStatus.PENDING: "pending",
    CallStatus.STALE: "pending",
    CallStatus.RUNNING: "running",
}
_RUN_OUTCOME: dict[CallStatus, Literal["success", "failure"]] = {
    CallStatus.SUCCEEDED: "success",
    CallStatus.FAILED: "failure",
    CallStatus.TIMED_OUT: "failure",
    CallStatus.CANCELLED: "failure",
}


def _failure_reason(status: CallStatus, error: dict[str, Any] | None) -> str | None:
    if status is CallStatus.CANCELLED:
        return str(FailureReason.CANCELLED)
    if status not in (CallStatus.FAILED, CallStatus.TIMED_OUT):
        return None
    error = error or {}
    if status is CallStatus.TIMED_OUT or error.get("timeout"):
        return str(FailureReason.FUNCTION_TIMEOUT)
    if error.get("request_error"):
        return str(FailureReason.REQUEST_ERROR)
    if error.get("replay_mismatch"):
        return str(FailureReason.REPLAY_MISMATCH)
    return str(FailureReason.FUNCTION_ERROR)


_ATTEMPT_REASON = {
    "failure": FailureReason.FUNCTION_ERROR,
    "crashed": FailureReason.FUNCTION_ERROR,
    "timed_out": FailureReason.FUNCTION_TIMEOUT,
}


def _function_run(
    call: _request_ops.CallInfo, group_id: str | None, children: list[str]
) -> _models.FunctionRun:
    allocations = []
    for attempt in call.attempts:
        reason = _ATTEMPT_REASON.get(attempt.outcome)
        if attempt.outcome == "failure" and (attempt.error or {}).get("request_error"):
            reason = FailureReason.REQUEST_ERROR
        allocations.append(
            _models.Allocation(
                id=f"{call.id}:{attempt.attempt}",
                attempt_number=attempt.attempt,
                outcome="success" if attempt.outcome == "success" else "failure",
                failure_reason=None if reason is None else str(reason),
                execution_duration_ms=(
                    None
                    if attempt.duration_s is None
                    else round(attempt.duration_s * 1000, 3)
                ),
                run=attempt.run,
                attempt_outcome=attempt.outcome,
                error=attempt.error,
                retry_delay_s=attempt.retry_delay_s,
                code_version=attempt.code_version,
            )
        )
    return _models.FunctionRun(
        id=call.id,
        name=call.function,
        status=_RUN_STATUS.get(call.status, "completed"),
        outcome=_RUN_OUTCOME.get(call.status),
        failure_reason=_failure_reason(call.status, call.error),
        child_function_run_ids=children,
        allocations=allocations,
        created_at=_ms(call.started_at_ms),
        call_status=call.status,
        kind=call.kind,
        parent_id=call.parent_id,
        seq=call.seq,
        group_id=group_id,
        error=call.error,
        started_at_ms=call.started_at_ms,
        finished_at_ms=call.finished_at_ms,
        served_from_checkpoint=call.served_from_checkpoint,
        ran_in_latest_run=call.ran_in_latest_run,
    )


# -- cursors ----------------------------------------------------------------------------

_CURSOR_VERSION = 1
_MAX_CURSOR_CHARS = 16_384


def encode_cursor(before_ms: float, seen: list[str]) -> str:
    """An opaque cursor: the page's oldest time and the ids seen at exactly it."""
    raw = json.dumps({"v": _CURSOR_VERSION, "t": before_ms, "ids": seen})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, list[str]]:
    """The time and ids of a cursor from ``encode_cursor``; 400 for anything else."""
    problem = _errors.bad_request(
        "bad_cursor",
        f"cursor {cursor[:40]!r} is not one this server gave out "
        "(pass the next_cursor of a previous page)",
    )
    if not cursor or len(cursor) > _MAX_CURSOR_CHARS or not cursor.isascii():
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise problem from None
    if not isinstance(data, dict) or data.get("v") != _CURSOR_VERSION:
        raise problem
    before_ms, seen = data.get("t"), data.get("ids")
    if (
        not isinstance(before_ms, int | float)
        or isinstance(before_ms, bool)
        or not isinstance(seen, list)
        or not all(isinstance(item, str) for item in seen)
    ):
        raise problem
    try:
        time_ms = float(before_ms)  # a 400-digit integer does not fit a float
    except OverflowError:
        raise problem from None
    if not math.isfinite(time_ms):
        raise problem
    return time_ms, seen
