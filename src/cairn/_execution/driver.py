"""The one attempt driver: look up, serve or run, record, retry.

Every call goes through ``Attempt``: an inline call (run in its caller's process,
sync or on the caller's event loop) loops over attempts here, with its backoff; a
dispatched call (``dispatch``) runs one attempt per claim, and the store queues the
retry. Either way an attempt begins, runs the user's code in a frame of its own,
and ends with one record: a committed checkpoint or a recorded failure.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from cairn import _faults, _ids, _limits, _registry, _serialization, errors
from cairn._registry import FunctionSpec
from cairn.observability import _metrics, _tracing
from cairn.store import (
    CallKey,
    CallRecord,
    CallSuccess,
    FlowLimits,
    RecordedChild,
    RunningCall,
    StoreRefused,
    _flow,
)
from cairn.types import RequestStatus

from . import arguments, coroutines, failures, frames, futures, waits
from .attempts import Attempts
from .frames import Frame, RequestRun

# How often a call held back by its function's max_concurrency tries again.
_CAP_POLL_S = 0.01

Body = Callable[[Frame, tuple[Any, ...], dict[str, Any]], Any]
# A success left for a batch commit, with the attempt that made it.
Deferred = tuple["Attempt", CallSuccess]


def invoke(spec: FunctionSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call the user's function; methods of ``@cls`` classes get the process's instance."""
    if spec.class_name is not None:
        # The instance user code built is a placeholder (``@cls`` makes __init__ a
        # no-op); the real one is made once per process.
        return spec.fn(_registry.instance_of(spec.class_name), *args, **kwargs)
    return spec.fn(*args, **kwargs)


def settle(result: Any) -> Any:
    """A call's output: a returned, unstarted Future is a tail call, run and waited."""
    value = futures.as_input(result)
    if not isinstance(value, futures.Future):
        return result
    _check_tail(value)
    return value.result()


async def settle_async(result: Any) -> Any:
    """``settle`` on an event loop: a returned coroutine of a call is awaited."""
    if type(result) in futures.PLAIN_TYPES:
        return result
    if isinstance(result, coroutines.OneShot):
        if isinstance(result, futures.Future):
            _check_tail(result)
        return await result
    if isinstance(result, futures.Future):
        _check_tail(result)
        return await result._await()
    return result


def _check_tail(future: futures.Future) -> None:
    if future._started:
        raise errors.SDKUsageError(
            f"a tail call Future {future!r} is already running; return an unstarted "
            "Future (f.future(...)) or its result"
        )


def run_coroutine(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run an async function's attempt to completion from sync code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # A loop already runs in this thread (sync code called from async code waits,
    # and runs claimed work meanwhile): a second loop cannot run here, so it runs
    # in a thread of its own, in this thread's context (the running call).
    context = contextvars.copy_context()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = context.run(asyncio.run, main())
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=target, name="cairn-async-call")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- one call's attempts ---------------------------------------------------------------------
class Attempt:
    """The steps of a call's attempts in this process, whoever drives them.

    ``parent`` is the calling frame of an inline call (its clock stops while the
    call runs, and it keeps the call's request-state writes); None for a
    dispatched call, whose caller is elsewhere.
    """

    def __init__(
        self,
        run: RequestRun,
        key: CallKey,
        spec: FunctionSpec,
        record: CallRecord | None,
        args_blob: bytes | None,
        parent: Frame | None = None,
    ) -> None:
        self.run = run
        self.key = key
        self.spec = spec
        self.parent = parent
        self.runtime = frames.process()
        self.attempts = Attempts(key, spec, run, record, self.runtime.clock)
        self.attempts.args_blob = args_blob
        #: the caller's own arguments when a copy of them is the same values
        #: (atoms only): an attempt needs no unpickling to get fresh ones
        self.given: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.frame: Frame | None = None
        self.token: Any = None
        self.trace = _tracing.call_trace(
            run.request_id,
            run.run,
            run.application,
            key,
            self.runtime.store,
            inline=parent is not None,
        )
        self.outcome = "interrupted"  # the attempt's, for its span
        self.error: BaseException | None = None
        #: the request's engine waits for its end here (``ClaimedCall.awaited``)
        self.report_end = False

    def first_wait_s(self) -> float:
        """Backoff left over from a failed attempt recorded before a restart."""
        if not self.attempts.not_before_ms:
            return 0.0
        now = self.runtime.clock.now_ms()
        return max(0.0, (self.attempts.not_before_ms - now) / 1000.0)

    def wait_for_slot(self) -> float:
        """Under ``max_concurrency`` or ``rate_limit``, how long to wait before
        trying again (0: go). Waiting uses no attempt."""
        spec = self.spec
        cap, rate = spec.max_concurrency, spec.rate_limit
        if cap is None and rate is None:
            return 0.0
        key, limits = self.key, None
        if spec.concurrency_key is not None or rate is not None:
            if spec.concurrency_key is not None:
                key = dataclasses.replace(
                    key, concurrency_key=_limits.of_call(spec, *self.arguments())
                )
            limits = FlowLimits(
                rates={} if rate is None else {spec.name: rate.bucket},
                key_caps={}
                if cap is None or spec.concurrency_key is None
                else {spec.name: cap},
            )
            if spec.concurrency_key is not None:
                cap = None  # the cap is per key, not the function's
        call = RunningCall(
            key=key,
            run=self.run.run,
            worker_id=self.runtime.worker_id,
            executor=self.runtime.executor,
            started_at_ms=self.runtime.clock.now_ms(),
        )
        if self.runtime.store.start_capped(call, cap, limits):
            return 0.0
        return _CAP_POLL_S if rate is None else _flow.wait_s(rate.bucket)

    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """A fresh copy of the arguments for an attempt (user code may mutate them)."""
        if self.given is not None:
            return self.given[0], dict(self.given[1])
        blob = self.attempts.args_blob or b""
        args, kwargs = _serialization.loads(blob, f"arguments of {self.key.function}()")
        return args, kwargs

    def begin(self) -> Frame:
        """An attempt starts: its frame, its deadline, the running call."""
        self.attempts.begin()
        _faults.point("mid_attempt")
        self.frame = frames.open_frame(self.run, self.key, self.spec)
        self.frame.attempt = self.attempts.attempt
        if _metrics.M is not None and self.key.kind == "app" and self._first_in_run():
            _metrics.M.requests_started.labels(self.run.application).inc()
        self.outcome, self.error = "interrupted", None
        if self.trace is not None:
            self.trace.attempt_started(self.attempts.attempt, self.frame.started_at_ms)
        if self.parent is not None:
            self.parent.suspend()
        self.token = frames.enter(self.frame)
        return self.frame

    def _first_in_run(self) -> bool:
        """No attempt of this call is recorded in this run yet (an attempt
        interrupted for another call's sake does not start the request again)."""
        recorded = self.runtime.store.list_attempts(self.key.request_id)
        return not any(
            a.call_id == self.key.id and a.run == self.run.run for a in recorded
        )

    def end(self) -> Frame:
        """Leave the attempt's frame (always called, whatever happened)."""
        frame = self.frame
        assert frame is not None
        frames.leave(self.token)
        frames.close_frame(frame)
        if self.parent is not None:
            self.parent.resume()
        if self.trace is not None:
            self.trace.attempt_ended(self.outcome, self.error)
        if _metrics.M is not None:
            took_s = (self.runtime.clock.now_ms() - frame.started_at_ms) / 1000.0
            _metrics.M.call_duration.labels(self.key.function, self.outcome).observe(
                took_s
            )
        return frame

    def output(self, result: Any) -> bytes:
        """Serialize the attempt's result (inside the attempt: failures count)."""
        assert self.frame is not None
        self.frame.check_strict_end()
        return _serialization.dumps(result, f"output of {self.key.function}()")

    def failed(self, exc: BaseException) -> float | None:
        """Record a failed attempt; the backoff before the next (None: it was final)."""
        self.outcome, self.error = "failed", exc
        self.end()
        failure, delay = self.attempts.failure(exc, retryable=failures.retryable(exc))
        if delay is None:
            self._final("failed", exc)
        elif _metrics.M is not None:
            _metrics.M.retries.labels(self.key.function).inc()
        self.runtime.store.record_failure(failure)
        return delay

    def _final(self, outcome: str, error: BaseException | None) -> None:
        """The call ended for good in this run: its span, and for an application
        call the request's (flushed before the commit that lets a waiting client
        see the request end) and its count."""
        if _metrics.M is not None and self.key.kind == "app":
            _metrics.M.requests_finished.labels(self.run.application, outcome).inc()
        if self.trace is None:
            return
        self.trace.call_ended(outcome, error)
        if self.key.kind == "app":
            request = self.trace.request
            request.request_span(
                self.run.application, request.started_ms or 0.0, outcome, error
            )
            _tracing.flush()

    def raise_final(self, exc: BaseException) -> None:
        """Raise at the call site what the caller gets for a final failure."""
        record = (
            None
            if isinstance(exc, errors.RequestError)
            else self.runtime.store.get_call(self.key.id)
        )
        raise self.run.note(failures.final_error(self.key, exc, record))

    def succeeded(
        self,
        output: bytes,
        outcome: Any = None,
        deferred: list[Deferred] | None = None,
    ) -> None:
        """Commit the checkpoint (or leave it in ``deferred`` for a batch commit).

        Raises:
            Refused: see ``commit``.
        """
        self.outcome = "succeeded"
        frame = self.end()
        if self.parent is not None and frame.state_writes:
            self.parent.state_writes.update(frame.state_writes)
        success = self.attempts.success(output, frame, outcome)
        if self.trace is not None or _metrics.M is not None:
            failed = (
                outcome is not None and outcome.status is not RequestStatus.SUCCEEDED
            )
            self._final("failed" if failed else "succeeded", None)
        if deferred is not None and outcome is None:
            deferred.append((self, success))
            return
        _faults.point("before_commit")
        self.commit(success)
        _faults.point("after_commit")

    def commit(self, success: CallSuccess) -> None:
        """Commit the attempt's checkpoint.

        Raises:
            Refused: the store refused it for good (a value too large for it,
                say); the call failed with that, once: run again, it would end
                the same way, and an executor that stopped on it would see the
                call handed back and run again without end.
        """
        read_back = self.report_end and success.request_outcome is not None
        try:
            if _metrics.M is None:
                ended = self.runtime.store.commit_success(success, read_back=read_back)
            else:
                with _metrics.commit_timer():
                    ended = self.runtime.store.commit_success(
                        success, read_back=read_back
                    )
        except StoreRefused as refused:
            error = errors.SerializationError(
                f"the store refused the checkpoint of {self.key.function}(): {refused}"
            )
            # Its trace and metrics already say how the attempt ended: succeeded.
            self.run.served[:0] = success.served_ids
            failure, _ = self.attempts.failure(error, retryable=False)
            self.runtime.store.record_failure(failure)
            raise failures.Refused(error) from None
        if ended is not None:
            self.runtime.ended.append(ended)


# -- inline calls ------------------------------------------------------------------------------
def lookup(
    parent: Frame, key: CallKey, blob: bytes
) -> tuple[bool, Any, CallRecord | None]:
    """A checkpoint hit returns ``(True, value, None)``; a recorded failure of this
    run raises; otherwise ``(False, None, record)`` with what is stored of it.

    A checkpoint recorded with other arguments (``blob``) is not a hit: an adaptive
    replay runs the call again, a strict one stops with the changed argument.
    """
    store = frames.process().store
    parent.check_strict(key, store)
    recorded = parent.recorded_child(key, store)
    if recorded is None:
        return False, None, None
    if recorded.output is not None:
        what = arguments.changed(recorded.args, blob, key.function)
        if what is None:
            return True, _serve(parent, key, recorded), None
        if parent.run.strict:
            raise failures.Diverged(
                f"strict replay of request {parent.run.request_id!r}: call #{key.seq} "
                f"of {parent.key.function!r}, {key.function!r}, was recorded with "
                f"other arguments: {what} changed"
            )
    record = store.get_call(key.id)  # its attempts and error count
    if record is None:
        return False, None, None
    if record.run == parent.run.run and record.status.final:
        raise parent.run.note(failures.error_of(record))
    return False, None, record


def _serve(parent: Frame, key: CallKey, recorded: RecordedChild) -> Any:
    """Return a checkpointed output, re-applying the request-state writes it made."""
    assert recorded.output is not None
    store = frames.process().store
    if recorded.has_state_writes:
        writes = _serialization.loads(
            store.get_state_writes(key.id) or b"", "state writes"
        )
        for state_key, value in writes.items():
            store.state_set(key.request_id, state_key, value)
        parent.state_writes.update(writes)
    parent.run.served.append(key.id)
    trace = _tracing.call_trace(
        key.request_id, parent.run.run, parent.run.application, key, store, inline=True
    )
    if trace is not None:
        trace.served()
    _faults.point("replay_serve")
    return _serialization.loads(recorded.output, f"output of {key.function}()")


def _prepare(
    parent: Frame,
    key: CallKey,
    spec: FunctionSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, Attempt | None]:
    """``(output, None)`` for a checkpoint hit, else ``(None, attempt)`` to run."""
    blob = _serialization.dumps_arguments(key.function, args, kwargs)
    hit, value, record = lookup(parent, key, blob)
    if hit:
        return value, None
    attempt = Attempt(parent.run, key, spec, record, blob, parent)
    if _serialization.atoms_only(args, kwargs):
        attempt.given = (args, kwargs)
    return None, attempt


def _backoff_s(attempt: Attempt, exc: Exception) -> float:
    """Record a failed attempt: the wait before the next, or the final error raised."""
    delay = attempt.failed(exc)
    if delay is None:
        attempt.raise_final(exc)
    return delay or 0.0


def _done(attempt: Attempt, output: bytes, value: Any) -> Any:
    """Commit; the caller gets a copy of the output (an atom is its own copy)."""
    try:
        attempt.succeeded(output)
    except failures.Refused as refused:
        attempt.raise_final(refused.error)
    if _serialization.is_atom(value):
        return value
    return _serialization.loads(output, f"output of {attempt.key.function}()")


def run_inline(
    parent: Frame,
    key: CallKey,
    spec: FunctionSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    body: Body | None = None,
) -> Any:
    """Run a call in this process with its retries; return its (checkpointed) output."""
    served, attempt = _prepare(parent, key, spec, args, kwargs)
    if attempt is None:
        return served
    wait_s = attempt.first_wait_s()
    while True:
        if wait_s > 0:
            _faults.point("retry_backoff")
            parent.suspend()
            try:
                attempt.runtime.clock.sleep(wait_s)
            finally:
                parent.resume()
        wait_s = attempt.wait_for_slot()
        if wait_s > 0:
            continue
        a, kw = attempt.arguments()
        frame = attempt.begin()
        try:
            result = body(frame, a, kw) if body else invoke(spec, a, kw)
            value = settle(result)
            output = attempt.output(value)
        except Exception as exc:
            wait_s = _backoff_s(attempt, exc)
            continue
        except BaseException as exc:
            attempt.end()
            waits.unwound(exc, key)
            raise
        return _done(attempt, output, value)


async def run_inline_async(
    parent: Frame,
    key: CallKey,
    spec: FunctionSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``run_inline`` for an async function, on the caller's event loop."""
    served, attempt = _prepare(parent, key, spec, args, kwargs)
    if attempt is None:
        return served
    wait_s = attempt.first_wait_s()
    while True:
        if wait_s > 0:
            parent.suspend()
            try:
                await asyncio.sleep(wait_s)
            finally:
                parent.resume()
        wait_s = attempt.wait_for_slot()
        if wait_s > 0:
            continue
        a, kw = attempt.arguments()
        attempt.begin()
        try:
            value = await settle_async(await invoke(spec, a, kw))
            output = attempt.output(value)
        except Exception as exc:
            wait_s = _backoff_s(attempt, exc)
            continue
        except BaseException as exc:
            attempt.end()
            waits.unwound(exc, key)
            raise
        return _done(attempt, output, value)


# -- reduces ------------------------------------------------------------------------------------
def reduce_spec(spec: FunctionSpec) -> FunctionSpec:
    """The spec of a reduce's own call: no retries of its own (its steps have them)."""
    return dataclasses.replace(spec, retries=None, is_async=False)


def _fold_start(initial: Any, items: list[Any]) -> tuple[Any, list[Any]]:
    values = list(items)
    if initial is futures.MISSING:
        if not values:
            raise errors.SDKUsageError("reduce of empty iterable with no initial value")
        return values[0], values[1:]
    return initial, values


def _step_key(parent: Frame, spec: FunctionSpec, position: int) -> CallKey:
    return CallKey(
        id=_ids.item_id(parent.key.id, "reduce", position),
        request_id=parent.run.request_id,
        parent_id=parent.key.id,
        seq=position,
        function=spec.name,
        kind="reduce_step",
        group_id=None,
        dispatched=False,
    )


def fold(
    parent: Frame,
    spec: FunctionSpec,
    initial: Any,
    items: list[Any],
    item_first: bool = False,
) -> Any:
    """A reduce: sequential checkpointed steps under the reduce's own call.

    Each step calls ``function(accumulator, item)``, or ``function(item,
    accumulator)`` with ``item_first`` (a map result's ``reduce``).
    """
    accumulator, values = _fold_start(initial, items)
    for position, item in enumerate(values):
        step = (item, accumulator) if item_first else (accumulator, item)
        accumulator = run_inline(
            parent, _step_key(parent, spec, position), spec, step, {}
        )
    return accumulator


async def fold_async(
    parent: Frame,
    spec: FunctionSpec,
    initial: Any,
    items: list[Any],
    item_first: bool = False,
) -> Any:
    """``fold`` for async functions: each step awaited on the event loop."""
    accumulator, values = _fold_start(initial, items)
    for position, item in enumerate(values):
        step = (item, accumulator) if item_first else (accumulator, item)
        accumulator = await run_inline_async(
            parent, _step_key(parent, spec, position), spec, step, {}
        )
    return accumulator
