"""Running a claimed, dispatched call: the application call, a map item, a Future."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from cairn import (
    _calls,
    _events,
    _faults,
    _frames,
    _futures,
    _registry,
    _runtime,
    _serialization,
    errors,
)
from cairn._frames import Diverged, RequestRun
from cairn.store import CallKey, CallSuccess, ClaimedCall, RequestOutcome
from cairn.types import RequestStatus

logger = logging.getLogger(__name__)


def run(claimed: ClaimedCall, deferred: list[CallSuccess] | None = None) -> None:
    """Run one attempt of a claimed call and record how it ended.

    With ``deferred``, a success (not of an application call) is appended there
    for the caller to commit with others in one transaction.
    """
    record = claimed.record
    runtime = _frames.process()
    key = CallKey(
        id=record.id,
        request_id=record.request_id,
        parent_id=record.parent_id,
        seq=record.seq,
        function=record.function,
        kind=record.kind,
        group_id=record.group_id,
        dispatched=True,
    )
    request_run = RequestRun(
        record.request_id,
        claimed.request_run,
        claimed.strict_replay,
        claimed.application,
    )
    spec = _registry.find(record.function)
    if spec is None:
        error = errors.InternalError(
            f"function {record.function!r} is not defined in the code this worker loaded"
        )
        _record_final(key, request_run, record, error)
        return
    if record.kind == "reduce":
        spec = _runtime.reduce_spec(spec)
    attempts = _calls.Attempts(key, spec, request_run, record)
    attempts.failed = record.run_attempts if record.run == request_run.run else 0
    attempts.args_blob = None  # already stored with the pending row
    if record.kind == "app":
        runtime.store.append_events(
            record.request_id,
            [
                _events.request_started(
                    record.request_id, record.function, request_run.run, _calls.now_ms()
                )
            ],
        )
    _faults.point("dispatched_claimed")
    attempts.begin()
    _faults.point("mid_attempt")
    frame = _runtime._new_frame(request_run, key, spec)
    token = _frames.enter(frame)
    output_json: bytes | None = None
    try:
        result = _execute(frame, spec, record.kind, claimed.args)
        frame.check_strict_end()
        output = _serialization.dumps(result, f"output of {key.function}()")
        if record.kind == "app":
            output_json = _boundary(spec).encode_output(result, spec.name)
    except Exception as exc:
        _frames.leave(token)
        _runtime._end_frame(frame)
        failure, _delay = attempts.failure(exc, retryable=_calls.retryable(exc))
        runtime.store.record_failure(failure)
        return
    except Diverged as exc:
        _frames.leave(token)
        _runtime._end_frame(frame)
        failure, _delay = attempts.failure(exc, retryable=False)
        runtime.store.record_failure(failure)
        return
    except BaseException:
        _frames.leave(token)
        _runtime._end_frame(frame)
        raise
    _frames.leave(token)
    _runtime._end_frame(frame)
    outcome = None
    if record.kind == "app":
        outcome = RequestOutcome(status=RequestStatus.SUCCEEDED, output=output_json)
    success = attempts.success(output, frame, outcome)
    if deferred is not None and outcome is None:
        deferred.append(success)
        return
    _faults.point("before_commit")
    runtime.store.commit_success(success)
    _faults.point("after_commit")


def _execute(
    frame: _frames.Frame, spec: _registry.FunctionSpec, kind: str, blob: bytes | None
) -> Any:
    if kind == "app":
        data = _serialization.decode_json(blob or b"{}")
        args, kwargs = _boundary(spec).bind_input(
            list(data.get("args", [])), dict(data.get("kwargs", {})), spec.name
        )
        return _call(frame, spec, tuple(args), kwargs)
    args, kwargs = _serialization.loads(blob or b"", f"arguments of {spec.name}()")
    if kind == "reduce":
        initial, items, items_is_future = args
        initial = _runtime.resolve_refs(initial)
        values = [_runtime.resolve_refs(v) for v in items]
        if items_is_future:
            values = list(values[0])
        if spec.is_async or _registry.get(spec.name).is_async:
            return asyncio.run(
                _runtime.fold_async(frame, _registry.get(spec.name), initial, values)
            )
        return _runtime.fold(frame, _registry.get(spec.name), initial, values)
    resolved = tuple(_runtime.resolve_refs(v) for v in args)
    kwargs = {k: _runtime.resolve_refs(v) for k, v in kwargs.items()}
    return _call(frame, spec, resolved, kwargs)


def _call(
    frame: _frames.Frame,
    spec: _registry.FunctionSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if spec.is_async:

        async def main() -> Any:
            result = await _runtime.invoke(spec, args, kwargs)
            if isinstance(result, _futures.Future):
                result = await result
            return result

        return asyncio.run(main())
    result = _runtime.invoke(spec, args, kwargs)
    if isinstance(result, _futures.Future):
        result = _runtime._tail_call(result)
    return result


_boundaries: dict[str, _serialization.JsonBoundary] = {}


def _boundary(spec: _registry.FunctionSpec) -> _serialization.JsonBoundary:
    boundary = _boundaries.get(spec.name)
    if boundary is None:
        boundary = _boundaries[spec.name] = _serialization.JsonBoundary(spec.fn)
    return boundary


def _record_final(
    key: CallKey, run: RequestRun, record: Any, error: BaseException
) -> None:
    attempts = _calls.Attempts(
        key,
        _registry.FunctionSpec(name=key.function, fn=lambda: None, module=""),
        run,
        record,
    )
    attempts.begin()
    failure, _ = attempts.failure(error, retryable=False)
    _frames.process().store.record_failure(failure)
