"""Running a claimed, dispatched call: the application call, a map item, a Future,
a reduce, or a map over a Future's output. One attempt per claim; the store queues
the retry a failure asks for."""

from __future__ import annotations

import sys
import time
from typing import Any

from cairn import _decorators, _faults, _registry, _serialization, errors
from cairn.observability import _metrics
from cairn.store import CallKey, ClaimedCall, RequestOutcome, StoreRefused
from cairn.types import CallStatus, RequestStatus

from . import calls, driver, failures, frames, futures, waits
from .attempts import Attempts
from .frames import Frame, RequestRun


def run_batch(batch: list[ClaimedCall]) -> float:
    """Run claimed calls, committing fast ones together; the seconds their work took
    (not the commit's: a commit slowed by other workers must not shrink batches,
    which would only make more commits)."""
    started = time.monotonic()
    deferred: list[driver.Deferred] = []
    try:
        for claimed in batch:
            run_claimed(claimed, deferred=deferred)
        took_s = time.monotonic() - started
    finally:
        # Whatever finished is committed, even if a later item stopped the batch.
        if deferred:
            _faults.point("before_commit")
            _commit_all(deferred)
            _faults.point("after_commit")
    # A caller parked on these calls' Futures may go on once they all ended.
    waits.wake_parents(c.record.group_id for c in batch if c.record.kind != "app")
    return took_s


def _commit_all(deferred: list[driver.Deferred]) -> None:
    """Commit successes in one transaction; if the store refuses it for good, each
    on its own, so that only the one it refuses fails."""
    try:
        with _metrics.commit_timer():
            frames.process().store.commit_successes([s for _, s in deferred])
    except StoreRefused:
        for attempt, success in deferred:
            try:
                attempt.commit(success)
            except failures.Refused:
                pass  # recorded: the call failed


def run_claimed(
    claimed: ClaimedCall, deferred: list[driver.Deferred] | None = None
) -> None:
    """Run one attempt of a claimed call and record how it ended.

    With ``deferred``, a success (not of an application call) is appended there
    for the caller to commit with others in one transaction.
    """
    record = claimed.record
    runtime = frames.process()
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
    run = RequestRun(
        record.request_id,
        claimed.request_run,
        claimed.strict_replay,
        claimed.application,
    )
    spec = _registry.find(record.function)
    if spec is None:
        unknown = _registry.FunctionSpec(name=key.function, fn=lambda: None, module="")
        attempts = Attempts(key, unknown, run, record, runtime.clock)
        attempts.begin()
        error = errors.InternalError(
            f"function {record.function!r} is not defined in the code this worker loaded"
        )
        runtime.store.record_failure(attempts.failure(error, retryable=False)[0])
        return
    if record.kind in ("reduce", "map"):
        spec = driver.reduce_spec(spec)
    attempt = driver.Attempt(run, key, spec, record, None)
    attempt.report_end = claimed.awaited
    if record.run == run.run:
        attempt.attempts.failed = record.run_attempts
    _faults.point("dispatched_claimed")
    frame = attempt.begin()
    if claimed.fresh:
        frame.read_ahead_until = sys.maxsize  # nothing is recorded under it: no read
    try:
        result = _execute(frame, spec, record.kind, claimed.args)
        output = attempt.output(result)
        outcome = None
        if record.kind == "app":
            outcome = _app_outcome(frame, spec, result)
    except (Exception, failures.Diverged) as exc:
        attempt.failed(exc)
        return
    except waits.Parked as parked:
        attempt.end()
        waits.park(parked, key)
        return
    except BaseException:
        attempt.end()
        raise
    try:
        attempt.succeeded(output, outcome, deferred)
    except failures.Refused:
        pass  # recorded: the call failed


def _app_outcome(
    frame: Frame, spec: _registry.FunctionSpec, result: Any
) -> RequestOutcome:
    """The request's end when its application call returned: success, unless a
    call of this run raised a RequestError (then the request failed with it, even
    if a caller caught it, as Tensorlake records a request-level request_error)."""
    caught = frame.run.request_error
    if caught is None:
        return RequestOutcome(
            status=RequestStatus.SUCCEEDED,
            output=_boundary(spec).encode_output(result, spec.name),
        )
    error = failures.error_record(caught, caught.function_name or spec.name)
    return failures.failed_outcome(error, CallStatus.FAILED)


def _execute(
    frame: Frame, spec: _registry.FunctionSpec, kind: str, blob: bytes | None
) -> Any:
    if kind == "app":
        data = _serialization.decode_json(blob or b"{}")
        args, kwargs = _boundary(spec).bind_input(
            list(data.get("args", [])), dict(data.get("kwargs", {})), spec.name
        )
        return _call(spec, tuple(args), kwargs)
    args, kwargs = _serialization.loads(blob or b"", f"arguments of {spec.name}()")
    if kind == "reduce":
        return _reduce(frame, spec.name, args)
    if kind == "map":
        items = futures.resolve(args[0])
        return calls.map_blocking(_decorators.Function(_registry.get(spec.name)), items)
    resolved = tuple(futures.resolve(v) for v in args)
    kwargs = {k: futures.resolve(v) for k, v in kwargs.items()}
    return _call(spec, resolved, kwargs)


def _reduce(frame: Frame, name: str, payload: tuple[Any, ...]) -> Any:
    initial, items, items_is_future, *rest = payload
    item_first = bool(rest and rest[0])
    initial = futures.resolve(initial)
    values = [futures.resolve(v) for v in items]
    if items_is_future:
        values = list(values[0])
    spec = _registry.get(name)
    if spec.is_async:
        return driver.run_coroutine(
            lambda: driver.fold_async(frame, spec, initial, values, item_first)
        )
    return driver.fold(frame, spec, initial, values, item_first)


def _call(
    spec: _registry.FunctionSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if spec.is_async:

        async def main() -> Any:
            return await driver.settle_async(await driver.invoke(spec, args, kwargs))

        return driver.run_coroutine(main)
    return driver.settle(driver.invoke(spec, args, kwargs))


_boundaries: dict[str, _serialization.JsonBoundary] = {}


def _boundary(spec: _registry.FunctionSpec) -> _serialization.JsonBoundary:
    boundary = _boundaries.get(spec.name)
    if boundary is None:
        boundary = _boundaries[spec.name] = _serialization.JsonBoundary(spec.fn)
    return boundary
