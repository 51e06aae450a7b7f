"""How calls execute inside an executor process.

A blocking call runs *inline*, in the caller's process (one transaction per call,
no process hop). Parallel work — ``map`` items, started Futures, the application
call — is *dispatched*: written as pending rows that any executor claims. A caller
waiting on dispatched work claims and runs it itself when no one else has, so a
pool of N processes never deadlocks on nested fan-out.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from cairn import (
    _calls,
    _faults,
    _frames,
    _futures,
    _ids,
    _registry,
    _serialization,
    errors,
)
from cairn._frames import Diverged, Frame, RequestRun
from cairn._futures import (
    RETURN_WHEN,
    CallFuture,
    Future,
    MapFuture,
    ReduceFuture,
    RefFuture,
)
from cairn._registry import FunctionSpec
from cairn.store import (
    CallKey,
    CallRecord,
    CallSuccess,
    ClaimedCall,
    RecordedChild,
    RunningCall,
)
from cairn.types import CallStatus

_POLL_MIN_S = 0.0005
_POLL_MAX_S = 0.02
# Map items that run faster than this are claimed and committed in batches of up
# to _BATCH_MAX (the transaction, not the work, is then the cost per item).
_FAST_ITEM_S = 0.002
_BATCH_MAX = 64
# How often a call held back by its function's max_concurrency tries again.
_CAP_POLL_S = 0.01


@dataclasses.dataclass(frozen=True)
class _Ref:
    """Stands in a dispatched call's arguments for a Future's output."""

    call_id: str
    # A map has no row of its own: its output is its group's, ``count`` items.
    count: int | None = None


# -- blocking and async calls ------------------------------------------------------------------
def call_blocking(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``f(x)`` in sync code: a checkpointed call run in this process."""
    parent = _frames.current()
    args, kwargs, dep_ids = _resolve_arguments(parent, args, kwargs)
    key = _child_key(
        parent, ["FunctionCall", function.name], dep_ids, function.name, "call"
    )
    return run_inline(parent, key, function._spec, args, kwargs)


async def call_async(
    function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``await f(x)`` for an async function: a checkpointed call on this event loop."""
    parent = _frames.current()
    futures = [v for v in (*args, *kwargs.values()) if isinstance(v, Future)]
    for future in futures:
        if not future._started:
            start_future(future)
    if futures:
        await wait_futures_async(futures, None, RETURN_WHEN.ALL_COMPLETED)
    args, kwargs, dep_ids = _resolve_arguments(parent, args, kwargs)
    key = _child_key(
        parent, ["FunctionCall", function.name], dep_ids, function.name, "call"
    )
    return await run_inline_async(parent, key, function._spec, args, kwargs)


def _child_key(
    parent: Frame,
    metadata: list[str],
    dep_ids: list[str],
    function: str,
    kind: str,
    *,
    dispatched: bool = False,
) -> CallKey:
    call_id, seq = parent.next_child(metadata, dep_ids)
    return CallKey(
        id=call_id,
        request_id=parent.run.request_id,
        parent_id=parent.key.id,
        seq=seq,
        function=function,
        kind=kind,
        group_id=call_id if dispatched else None,
        dispatched=dispatched,
    )


def _resolve_arguments(
    parent: Frame, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], list[str]]:
    """Start Future arguments, wait for them, and return plain values plus their ids."""
    futures = [v for v in args if isinstance(v, Future)]
    futures += [kwargs[k] for k in sorted(kwargs) if isinstance(kwargs[k], Future)]
    if not futures:
        return args, kwargs, []
    for future in futures:
        if not future._started:
            start_future(future)
    wait_futures(futures, None, RETURN_WHEN.ALL_COMPLETED)
    for future in futures:
        if future._exception is not None:
            raise future._exception
    plain_args = tuple(v._result if isinstance(v, Future) else v for v in args)
    plain_kwargs = {
        k: v._result if isinstance(v, Future) else v for k, v in kwargs.items()
    }
    return plain_args, plain_kwargs, [str(f._call_id) for f in futures]


def _lookup(parent: Frame, key: CallKey) -> tuple[bool, Any, CallRecord | None]:
    """A checkpoint hit returns ``(True, value, record)``; a recorded failure raises."""
    store = _frames.process().store
    parent.check_strict(key, store)
    recorded = parent.recorded_child(key, store)
    if recorded is None:
        return False, None, None
    if recorded.output is not None:
        return True, _serve(parent, key, recorded), None
    record = store.get_call(key.id)  # not succeeded: its attempts and error count
    if record is None:
        return False, None, None
    if record.run == parent.run.run and record.status.final:
        _calls.raise_recorded(record)
    return False, None, record


def _serve(parent: Frame, key: CallKey, recorded: RecordedChild) -> Any:
    """Return a checkpointed output, re-applying the request-state writes it made."""
    assert recorded.output is not None
    if recorded.has_state_writes:
        store = _frames.process().store
        writes = _serialization.loads(
            store.get_state_writes(key.id) or b"", "state writes"
        )
        for state_key, value in writes.items():
            store.state_set(key.request_id, state_key, value)
        parent.state_writes.update(writes)
    parent.run.served.append(key.id)
    _faults.point("replay_serve")
    return _serialization.loads(recorded.output, f"output of {key.function}()")


def _new_frame(run: RequestRun, key: CallKey, spec: FunctionSpec) -> Frame:
    frame = Frame(
        run=run,
        key=key,
        spec=spec,
        timeout_s=spec.timeout_s,
        previous_id=key.id,
        started_at_ms=_calls.now_ms(),
    )
    frame.slot = _frames.process().board.acquire(key, spec.timeout_s)
    return frame


def _end_frame(frame: Frame) -> None:
    runtime = _frames.process()
    runtime.flusher.untrack(frame)
    runtime.board.release(frame.slot)


def invoke(spec: FunctionSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call the user's function; methods of ``@cls`` classes get the process's instance."""
    if spec.class_name is not None:
        # The instance user code built is a placeholder (``@cls`` makes __init__ a
        # no-op); the real one is made once per process.
        return spec.fn(_registry.instance_of(spec.class_name), *args, **kwargs)
    return spec.fn(*args, **kwargs)


class _Inline:
    """The steps of one inline call, shared by the sync and async drivers."""

    def __init__(
        self,
        parent: Frame,
        key: CallKey,
        spec: FunctionSpec,
        record: CallRecord | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.parent = parent
        self.key = key
        self.spec = spec
        self.attempts = _calls.Attempts(key, spec, parent.run, record)
        self.attempts.args_blob = _serialization.dumps_arguments(
            key.function, args, kwargs
        )
        self.frame: Frame | None = None
        self.token: Any = None

    def first_wait_s(self) -> float:
        """Backoff left over from a failed attempt recorded before a restart."""
        return max(0.0, (self.attempts.not_before_ms - _calls.now_ms()) / 1000.0)

    def wait_for_slot(self) -> float:
        """Under ``max_concurrency``, how long to wait before trying again (0: go)."""
        cap = self.spec.max_concurrency
        if cap is None:
            return 0.0
        runtime = _frames.process()
        call = RunningCall(
            key=self.key,
            run=self.parent.run.run,
            worker_id=runtime.worker_id,
            executor=runtime.executor,
            started_at_ms=_calls.now_ms(),
        )
        return 0.0 if runtime.store.start_capped(call, cap) else _CAP_POLL_S

    def begin(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Start an attempt: a fresh copy of the arguments, a frame, a deadline."""
        blob = self.attempts.args_blob or b""
        args, kwargs = _serialization.loads(blob, f"arguments of {self.key.function}()")
        self.attempts.begin()
        _faults.point("mid_attempt")
        self.frame = _new_frame(self.parent.run, self.key, self.spec)
        _frames.process().flusher.track(self.frame)
        self.parent.suspend()
        self.token = _frames.enter(self.frame)
        return args, kwargs

    def end(self) -> Frame:
        """Leave the attempt's frame (always called, whatever happened)."""
        frame = self.frame
        assert frame is not None
        _frames.leave(self.token)
        _end_frame(frame)
        self.parent.resume()
        return frame

    def output(self, result: Any) -> bytes:
        """Serialize the attempt's result (inside the attempt: failures count)."""
        assert self.frame is not None
        self.frame.check_strict_end()
        return _serialization.dumps(result, f"output of {self.key.function}()")

    def failed(self, exc: Exception) -> float:
        """Record a failed attempt; return the backoff, or raise at the call site."""
        self.end()
        failure, delay = self.attempts.failure(exc, retryable=_calls.retryable(exc))
        _frames.process().store.record_failure(failure)
        if delay is None:
            _raise_final(self.key, exc)
        return delay

    def succeeded(self, output: bytes) -> Any:
        """Commit the checkpoint, then hand the caller its own copy of the output."""
        frame = self.end()
        self.parent.state_writes.update(frame.state_writes)
        _faults.point("before_commit")
        _frames.process().store.commit_success(self.attempts.success(output, frame))
        _faults.point("after_commit")
        return _serialization.loads(output, f"output of {self.key.function}()")


def run_inline(
    parent: Frame,
    key: CallKey,
    spec: FunctionSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    custom: Callable[..., Any] | None = None,
) -> Any:
    """Run a call in this process with its retries; return its (checkpointed) output."""
    hit, value, record = _lookup(parent, key)
    if hit:
        return value
    call = _Inline(parent, key, spec, record, args, kwargs)
    wait_s = call.first_wait_s()
    while True:
        if wait_s > 0:
            _faults.point("retry_backoff")
            _sleep_waiting(parent, wait_s)
        wait_s = call.wait_for_slot()
        if wait_s > 0:
            continue
        a, kw = call.begin()
        try:
            result = custom(*a, **kw) if custom else invoke(spec, a, kw)
            if isinstance(result, Future):
                result = _tail_call(result)
            output = call.output(result)
        except Exception as exc:
            wait_s = call.failed(exc)
            continue
        except BaseException:
            call.end()
            raise
        return call.succeeded(output)


async def run_inline_async(
    parent: Frame,
    key: CallKey,
    spec: FunctionSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """``run_inline`` for an async function, on the caller's event loop."""
    hit, value, record = _lookup(parent, key)
    if hit:
        return value
    call = _Inline(parent, key, spec, record, args, kwargs)
    wait_s = call.first_wait_s()
    while True:
        if wait_s > 0:
            parent.suspend()
            try:
                await asyncio.sleep(wait_s)
            finally:
                parent.resume()
        wait_s = call.wait_for_slot()
        if wait_s > 0:
            continue
        a, kw = call.begin()
        try:
            result = await invoke(spec, a, kw)
            if isinstance(result, Future):
                result = await result
            output = call.output(result)
        except Exception as exc:
            wait_s = call.failed(exc)
            continue
        except BaseException:
            call.end()
            raise
        return call.succeeded(output)


def _raise_final(key: CallKey, exc: BaseException) -> NoReturn:
    if isinstance(exc, errors.RequestError):
        if exc.function_name is None:
            exc.function_name = key.function
        raise exc
    record = _frames.process().store.get_call(key.id)
    if record is not None:
        _calls.raise_recorded(record)
    raise errors.FunctionError(f"function {key.function!r} failed: {exc}") from exc


def _sleep_waiting(frame: Frame, seconds: float) -> None:
    frame.suspend()
    try:
        time.sleep(seconds)
    finally:
        frame.resume()


def _tail_call(future: Future) -> Any:
    """A returned, unstarted Future is the call's output: start it and wait."""
    if future._started:
        raise errors.SDKUsageError(
            f"a tail call Future {future!r} is already running; return an unstarted "
            "Future (f.future(...)) or its result"
        )
    return future.result()


# -- futures -------------------------------------------------------------------------------------
def start_future(future: Future) -> None:
    """Start a Future and, depth first, every Future it depends on."""
    parent = _frames.current()
    for dependency in future._dependencies():
        if not dependency._started:
            start_future(dependency)
    future._started = True
    not_before = (
        _calls.now_ms() + future._start_delay_s * 1000.0
        if future._start_delay_s
        else 0.0
    )
    if isinstance(future, CallFuture):
        _start_call(parent, future, not_before)
    elif isinstance(future, MapFuture):
        _start_map(parent, future, not_before)
    elif isinstance(future, ReduceFuture):
        _start_reduce(parent, future, not_before)
    else:
        raise errors.SDKUsageError(f"cannot start {future!r}")


def _as_ref(value: Any) -> Any:
    if isinstance(value, MapFuture):
        return _Ref(str(value._call_id), value.count)
    return _Ref(str(value._call_id)) if isinstance(value, Future) else value


def _enqueue(
    parent: Frame, group_id: str, rows: list[tuple[CallKey, bytes | None, float]]
) -> None:
    store = _frames.process().store
    # Calls checkpointed by an earlier run are served, not run: say so in this run.
    parent.run.served.extend(store.succeeded_in_group(group_id))
    # Two transactions for a map, so that a crash between them (the map_fanout
    # fault point) leaves a half-written fan-out that a restart must complete.
    half = (len(rows) + 1) // 2
    store.enqueue_calls(rows[:half], parent.run.run)
    if rows[half:]:
        _faults.point("map_fanout")
        store.enqueue_calls(rows[half:], parent.run.run)


def _start_call(parent: Frame, future: CallFuture, not_before: float) -> None:
    deps = [v for v in future.args if isinstance(v, Future)]
    deps += [
        future.kwargs[k]
        for k in sorted(future.kwargs)
        if isinstance(future.kwargs[k], Future)
    ]
    name = future.function.name
    key = _child_key(
        parent,
        ["FunctionCall", name],
        [str(d._call_id) for d in deps],
        name,
        "call",
        dispatched=True,
    )
    future._call_id = key.id
    args = tuple(_as_ref(v) for v in future.args)
    kwargs = {k: _as_ref(v) for k, v in future.kwargs.items()}
    blob = _serialization.dumps_arguments(name, args, kwargs)
    _enqueue(parent, key.id, [(key, blob, not_before)])


def _start_map(parent: Frame, future: MapFuture, not_before: float) -> None:
    name = future.function.name
    if future.items_future is not None:
        items = future.items_future.result()
        if not isinstance(items, list | tuple):
            raise errors.SDKUsageError(
                f"{name}.map() got a Future whose result is not a list"
            )
        future.items = list(items)
        dep_ids = [str(future.items_future._call_id)]
    else:
        dep_ids = [str(v._call_id) for v in future.items if isinstance(v, Future)]
    key = _child_key(parent, [f"MAP_OPERATION:{name}"], dep_ids, name, "map")
    future._call_id = key.id
    future.count = len(future.items)
    rows: list[tuple[CallKey, bytes | None, float]] = []
    for position, item in enumerate(future.items):
        item_key = CallKey(
            id=_ids.item_id(key.id, "map", position),
            request_id=key.request_id,
            parent_id=parent.key.id,
            seq=position,
            function=name,
            kind="map_item",
            group_id=key.id,
            dispatched=True,
        )
        blob = _serialization.dumps_arguments(name, (_as_ref(item),), {})
        rows.append((item_key, blob, not_before))
    if not rows:
        future._finish([])
        return
    _enqueue(parent, key.id, rows)


def _start_reduce(parent: Frame, future: ReduceFuture, not_before: float) -> None:
    name = future.function.name
    deps = future._dependencies()
    key = _child_key(
        parent,
        ["ReduceOperation", name],
        [str(d._call_id) for d in deps],
        name,
        "reduce",
        dispatched=True,
    )
    future._call_id = key.id
    items = [future.items_future] if future.items_future is not None else future.items
    payload = (
        _as_ref(future.initial)
        if future.initial is not _futures.MISSING
        else _futures.MISSING,
        [_as_ref(v) for v in items],
        future.items_future is not None,
    )
    blob = _serialization.dumps_arguments(name, payload, {})
    _enqueue(parent, key.id, [(key, blob, not_before)])


def poll_future(future: Future) -> bool:
    """Look once at the store; finish the Future if its result is there."""
    if future._done:
        return True
    store = _frames.process().store
    count = _group_count(future)
    if count is not None:
        group = str(future._call_id)
        counts = store.group_counts(group)
        if counts.get(CallStatus.SUCCEEDED, 0) >= count:
            values = [
                _serialization.loads(blob or b"", f"output of map item {seq}")
                for seq, blob in store.group_outputs(group)
                if seq < count
            ]
            future._finish(values)
            return True
        if sum(counts.values()) < count:
            future._finish(exception=_never_started(future))
            return True
        # Every item settles before the map fails, so that a replay re-runs only
        # the items that failed, not the ones a fail-fast would have skipped.
        unsettled = counts.get(CallStatus.PENDING, 0) + counts.get(
            CallStatus.RUNNING, 0
        )
        if not unsettled and any(
            counts.get(s, 0)
            for s in (CallStatus.FAILED, CallStatus.TIMED_OUT, CallStatus.CANCELLED)
        ):
            for position in range(count):
                record = store.get_call(_ids.item_id(group, "map", position))
                if (
                    record is not None
                    and record.status.final
                    and record.status is not CallStatus.SUCCEEDED
                ):
                    future._finish(exception=_recorded_error(record))
                    return True
        return False
    record = store.get_call(str(future._call_id))
    if record is None:
        future._finish(exception=_never_started(future))
        return True
    if record.status is CallStatus.SUCCEEDED:
        output = store.get_call_output(record.id) or b""
        future._finish(_serialization.loads(output, f"output of {record.function}()"))
        return True
    if record.status.final:
        future._finish(exception=_recorded_error(record))
        return True
    return False


def _group_count(future: Future) -> int | None:
    """Items of the map whose group ``future`` waits on (None: it waits on one call)."""
    if isinstance(future, MapFuture):
        return future.count
    if isinstance(future, RefFuture):
        return future.count
    return None


def _never_started(future: Future) -> errors.InternalError:
    """A started Future whose calls are not in the store can never finish: fail it
    rather than leave its request running with nothing to run."""
    return errors.InternalError(
        f"{future!r} waits on call {future._call_id} that was never started; "
        "the wait can never finish"
    )


def _recorded_error(record: CallRecord) -> BaseException:
    try:
        _calls.raise_recorded(record)
    except Diverged:
        raise
    except errors.CairnError as error:
        return error
    return errors.InternalError(f"call {record.id} failed without an error")


def _claim_for(futures: Iterable[Future]) -> ClaimedCall | None:
    runtime = _frames.process()
    now = _calls.now_ms()
    caps = _registry.concurrency_caps()
    for future in futures:
        if future._done or future._call_id is None:
            continue
        if _group_count(future) is not None:
            claimed = runtime.store.claim_call(
                runtime.worker_id,
                runtime.executor,
                now,
                group_id=future._call_id,
                caps=caps,
            )
        else:
            claimed = runtime.store.claim_call(
                runtime.worker_id,
                runtime.executor,
                now,
                call_id=future._call_id,
                caps=caps,
            )
        if claimed is not None:
            return claimed
    return None


def _run_pending(futures: list[Future]) -> bool:
    """Run pending work of ``futures`` here until none is left; True if any ran.

    Items of a map that prove fast are claimed, and their checkpoints committed,
    in growing batches (one transaction each way for the batch); a slow item
    brings the batch back to one, so that slow items stay spread over executors.
    """
    return _run_batches(lambda size: _claim_batch(futures, size), 1)


def run_group(claimed: ClaimedCall, keep_claiming: Callable[[], bool]) -> None:
    """Run a claimed call; if it is a fast map item, then the rest of its map that
    nobody holds yet.

    An executor that picked up one item goes on with the same map in growing
    batches, as the waiting caller does, instead of one claim per item, for as
    long as ``keep_claiming()`` (a draining worker stops taking work).
    """
    if _run_batch([claimed]) >= _FAST_ITEM_S:
        return  # slow items stay one claim each, spread over the executors
    group_id = claimed.record.group_id
    spec = _registry.find(claimed.record.function)
    if claimed.record.kind != "map_item" or group_id is None or spec is None:
        return
    if spec.max_concurrency is not None:
        return  # capped items are claimed one by one, under the cap
    _run_batches(
        lambda size: _claim_group(group_id, size) if keep_claiming() else [], 2
    )


def _run_batches(claim: Callable[[int], list[ClaimedCall]], batch_size: int) -> bool:
    """Claim and run batches until ``claim`` finds nothing; True if any ran."""
    ran = False
    while True:
        batch = claim(batch_size)
        if not batch:
            return ran
        ran = True
        fast = _run_batch(batch) / len(batch) < _FAST_ITEM_S
        batch_size = min(batch_size * 2, _BATCH_MAX) if fast else 1


def _claim_group(group_id: str, size: int) -> list[ClaimedCall]:
    runtime = _frames.process()
    return runtime.store.claim_group(
        runtime.worker_id, runtime.executor, _calls.now_ms(), group_id, size
    )


def _claim_batch(futures: list[Future], size: int) -> list[ClaimedCall]:
    if size > 1:
        for future in futures:
            if (
                isinstance(future, MapFuture)
                and not future._done
                and future._call_id is not None
                and future.function._spec.max_concurrency is None
            ):
                batch = _claim_group(future._call_id, size)
                if batch:
                    return batch
    claimed = _claim_for(futures)
    return [] if claimed is None else [claimed]


def _run_batch(batch: list[ClaimedCall]) -> float:
    """Run claimed items, committing fast ones together; the seconds their work took
    (not the commit's: a commit slowed by other workers must not shrink batches,
    which would only make more commits)."""
    from cairn import _dispatched

    started = time.monotonic()
    successes: list[CallSuccess] = []
    try:
        for claimed in batch:
            _dispatched.run(claimed, deferred=successes)
        return time.monotonic() - started
    finally:
        # Whatever finished is committed, even if a later item stopped the batch.
        if successes:
            _faults.point("before_commit")
            _frames.process().store.commit_successes(successes)
            _faults.point("after_commit")


def _satisfied(futures: list[Future], mode: RETURN_WHEN) -> bool:
    done = [f for f in futures if f._done]
    if mode is RETURN_WHEN.ALL_COMPLETED or len(done) == len(futures):
        return len(done) == len(futures)
    if mode is RETURN_WHEN.FIRST_COMPLETED:
        return bool(done)
    return any(f._exception is not None for f in done)


def wait_futures(
    futures: list[Future], timeout: float | None, mode: RETURN_WHEN
) -> None:
    """Block until ``mode`` is satisfied or ``timeout`` passes, running work if idle."""
    frame = _frames.current()
    runtime = _frames.process()
    deadline = None if timeout is None else time.monotonic() + _check_timeout(timeout)
    frame.suspend()
    delay = _POLL_MIN_S
    try:
        while True:
            for future in futures:
                poll_future(future)
            if _satisfied(futures, mode):
                return
            if deadline is not None and time.monotonic() >= deadline:
                for future in futures:
                    if not future._done:
                        future._finish(exception=errors.TimeoutError())
                return
            # Run pending work ourselves only when we need all of it anyway: for
            # FIRST_* a slow sibling run inline would decide who finishes first.
            if deadline is None and mode is RETURN_WHEN.ALL_COMPLETED:
                # Claim until nothing is left before looking again: counting a map
                # group costs O(items), a claim O(log items).
                if _run_pending(futures):
                    delay = _POLL_MIN_S
                    continue
            runtime.board.set_waiting(True)
            pause = (
                delay
                if deadline is None
                else min(delay, max(0.0, deadline - time.monotonic()))
            )
            time.sleep(pause)
            runtime.board.set_waiting(False)
            delay = min(delay * 2, _POLL_MAX_S)
    finally:
        runtime.board.set_waiting(False)
        frame.resume()


async def wait_futures_async(
    futures: list[Future], timeout: float | None, mode: RETURN_WHEN
) -> None:
    """``wait_futures`` for event loops: polls without blocking the loop."""
    frame = _frames.current()
    runtime = _frames.process()
    deadline = None if timeout is None else time.monotonic() + _check_timeout(timeout)
    frame.suspend()
    delay = _POLL_MIN_S
    try:
        while True:
            for future in futures:
                poll_future(future)
            if _satisfied(futures, mode):
                return
            if deadline is not None and time.monotonic() >= deadline:
                for future in futures:
                    if not future._done:
                        future._finish(exception=errors.TimeoutError())
                return
            runtime.board.set_waiting(True)
            await asyncio.sleep(delay)
            runtime.board.set_waiting(False)
            delay = min(delay * 2, _POLL_MAX_S)
    finally:
        runtime.board.set_waiting(False)
        frame.resume()


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise errors.SDKUsageError(
            f"timeout must be a number of seconds >= 0, got {timeout!r}"
        )
    return float(timeout)


# -- dispatched calls ------------------------------------------------------------------------------
def fold(parent: Frame, spec: FunctionSpec, initial: Any, items: list[Any]) -> Any:
    """A reduce: sequential checkpointed steps under the reduce's own call."""
    values = list(items)
    if initial is _futures.MISSING:
        if not values:
            raise errors.SDKUsageError("reduce of empty iterable with no initial value")
        accumulator, values = values[0], values[1:]
    else:
        accumulator = initial
    for position, item in enumerate(values):
        key = CallKey(
            id=_ids.item_id(parent.key.id, "reduce", position),
            request_id=parent.run.request_id,
            parent_id=parent.key.id,
            seq=position,
            function=spec.name,
            kind="reduce_step",
            group_id=None,
            dispatched=False,
        )
        accumulator = run_inline(parent, key, spec, (accumulator, item), {})
    return accumulator


def reduce_spec(spec: FunctionSpec) -> FunctionSpec:
    """The spec of a reduce's own call: no retries of its own (its steps have them)."""
    return dataclasses.replace(spec, retries=None, is_async=False)


def run_reduce_inline(function: Any, future: ReduceFuture) -> Any:
    """``f.reduce(items, initial)`` in sync code: one checkpointed call holding the steps."""
    parent = _frames.current()
    deps = future._dependencies()
    for dependency in deps:
        if not dependency._started:
            start_future(dependency)
    if deps:
        wait_futures(deps, None, RETURN_WHEN.ALL_COMPLETED)
    initial, items = _reduce_inputs(future)
    spec = function._spec
    key = _child_key(
        parent,
        ["ReduceOperation", spec.name],
        [str(d._call_id) for d in deps],
        spec.name,
        "reduce",
    )
    driver = reduce_spec(spec)

    def drive(*_: Any) -> Any:
        return fold(_frames.current(), spec, initial, items)

    return run_inline(parent, key, driver, (), {}, custom=drive)


def _reduce_inputs(future: ReduceFuture) -> tuple[Any, list[Any]]:
    def value(v: Any) -> Any:
        if isinstance(v, Future):
            if v._exception is not None:
                raise v._exception
            return v._result
        return v

    initial = (
        value(future.initial)
        if future.initial is not _futures.MISSING
        else _futures.MISSING
    )
    if future.items_future is not None:
        items = value(future.items_future)
        if not isinstance(items, list | tuple):
            raise errors.SDKUsageError(
                f"{future.function.name}.reduce() got a Future whose result is not a list"
            )
        return initial, list(items)
    return initial, [value(v) for v in future.items]


def resolve_refs(value: Any) -> Any:
    """Replace a ``_Ref`` by the output of the call it names (waiting for it)."""
    if isinstance(value, _Ref):
        future = RefFuture(value.call_id, value.count)
        wait_futures([future], None, RETURN_WHEN.ALL_COMPLETED)
        if future._exception is not None:
            raise future._exception
        return future._result
    return value


async def fold_async(
    parent: Frame, spec: FunctionSpec, initial: Any, items: list[Any]
) -> Any:
    """``fold`` for async functions: each step awaited on the event loop."""
    values = list(items)
    if initial is _futures.MISSING:
        if not values:
            raise errors.SDKUsageError("reduce of empty iterable with no initial value")
        accumulator, values = values[0], values[1:]
    else:
        accumulator = initial
    for position, item in enumerate(values):
        key = CallKey(
            id=_ids.item_id(parent.key.id, "reduce", position),
            request_id=parent.run.request_id,
            parent_id=parent.key.id,
            seq=position,
            function=spec.name,
            kind="reduce_step",
            group_id=None,
            dispatched=False,
        )
        accumulator = await run_inline_async(parent, key, spec, (accumulator, item), {})
    return accumulator
