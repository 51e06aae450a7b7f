"""Futures: lazy handles on calls, maps and reduces, as in ``tensorlake.applications``.

Each kind owns how it is started (the rows it writes), polled (where its outcome is
in the store) and claimed (which pending rows a waiting caller may run itself);
``scheduler`` drives them. A started Future is known to other processes by a ``Ref``,
which stands in for it in the arguments of dispatched calls.

Calling an async function returns a Future that is also a coroutine (awaited once,
as any coroutine); ``Future.coroutine()`` wraps a Future in one. Both are accepted
wherever a Future is (``as_input`` unwraps them), as Tensorlake accepts coroutines.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cairn import _ids, _limits, _registry, _serialization, errors
from cairn.store import CallKey, ClaimedCall
from cairn.types import CallStatus

from . import clock as _clock
from . import failures, frames, scheduler
from .coroutines import FutureCoroutine, OneShot

if TYPE_CHECKING:
    from cairn._decorators import Function

RETURN_WHEN = scheduler.RETURN_WHEN


class _Missing:
    """ "No initial value" for reduce: one instance, even after pickling."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __reduce__(self) -> tuple[type[_Missing], tuple[()]]:
        return (_Missing, ())

    def __repr__(self) -> str:
        return "<no initial value>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Ref:
    """Stands in a dispatched call's arguments for a started Future's output."""

    call_id: str
    # A map has no row of its own: its output is its group's, ``count`` items.
    count: int | None = None


class Future:
    """A call that will run (or runs) durably; its result is a checkpoint."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._call_id: str | None = None
        self._start_delay_s = 0.0
        self._coroutine: FutureCoroutine | None = None
        # Set when started: some of its calls run in this run (none served), so the
        # calls it feeds cannot be served their checkpoints either.
        self._runs = False

    # -- starting --------------------------------------------------------------------
    def run(self) -> Future:
        """Start now. Raises SDKUsageError if it already started."""
        if self._started:
            raise errors.SDKUsageError(f"{self!r} is already running")
        scheduler.start(self)
        return self

    def run_later(self, start_delay: float) -> Future:
        """Start after ``start_delay`` seconds (durably: a crash does not reset it)."""
        self._start_delay_s = _clock.non_negative_s(
            start_delay, "run_later(start_delay=...)"
        )
        return self.run()

    # -- results ---------------------------------------------------------------------------
    def result(self, timeout: float | None = None) -> Any:
        """Wait for the result (starting the Future if needed) and return it.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; the Future fails with it.
            FunctionError: the call failed for good.
            RequestError: the call raised RequestError.
        """
        if not self._started:
            self.run()
        if not self._done:
            scheduler.wait([self], timeout, RETURN_WHEN.ALL_COMPLETED)
        return self._value()

    def done(self) -> bool:
        """Whether the Future finished (succeeded or failed)."""
        if self._done or not self._started:
            return self._done
        return self._poll()

    @property
    def exception(self) -> BaseException | None:
        """The failure of a finished Future, or None."""
        self.done()
        return self._exception

    def coroutine(self) -> Coroutine[Any, Any, Any]:
        """A coroutine that starts the Future and returns its result (the same one on
        every call), as an async function's call returns.

        Raises:
            SDKUsageError: called outside an async function, or the Future started.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise errors.SDKUsageError(
                "Future.coroutine() can only be called from an async function. "
                "Use Future.result() to get the result in a sync function."
            ) from None
        if self._started:
            raise errors.SDKUsageError(
                "Future.coroutine() cannot be called on a Future that is already "
                f"running: {self!r}"
            )
        if self._coroutine is None:
            self._coroutine = FutureCoroutine(self)
        return self._coroutine

    async def _await(self) -> Any:
        if not self._started:
            self.run()
        if not self._done:
            await scheduler.wait_async([self], None, RETURN_WHEN.ALL_COMPLETED)
        return self._value()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._await().__await__()

    @classmethod
    def wait(
        cls,
        futures: Iterable[Future],
        timeout: float | None = None,
        return_when: RETURN_WHEN = RETURN_WHEN.ALL_COMPLETED,
    ) -> tuple[list[Future], list[Future]]:
        """Wait for some or all Futures; returns ``(done, not_done)`` in input order.

        Errors are not raised: they sit on each Future's ``exception``. When
        ``timeout`` runs out, the pending Futures fail with ``TimeoutError``.
        """
        futures = list(futures)
        if not all(isinstance(f, Future) for f in futures):
            raise errors.SDKUsageError("Future.wait() takes an iterable of Futures")
        if not isinstance(return_when, RETURN_WHEN):
            raise errors.SDKUsageError(
                f"return_when must be a RETURN_WHEN, got {return_when!r}"
            )
        scheduler.check_timeout(timeout)
        for future in futures:
            if not future._started:
                future.run()
        split = scheduler.wait(futures, timeout, return_when)
        done = [f for f, is_done in zip(futures, split, strict=True) if is_done]
        return done, [
            f for f, is_done in zip(futures, split, strict=True) if not is_done
        ]

    # -- what each kind defines ------------------------------------------------------------
    def _inputs(self) -> list[Future]:
        return []

    def _start(self, parent: frames.Frame, not_before_ms: float) -> None:
        raise errors.SDKUsageError(f"cannot start {self!r}")

    def _poll(self) -> bool:
        return self._done

    def _claim(self, size: int) -> list[ClaimedCall]:
        return []

    def _ref(self) -> Ref:
        return Ref(str(self._call_id))

    def _inputs_run(self) -> bool:
        return any(f._runs for f in self._inputs())

    # -- internals ----------------------------------------------------------------------------
    def _value(self) -> Any:
        """A finished Future's result, or its failure raised."""
        if self._exception is not None:
            raise self._exception
        return self._result

    def _finish(
        self, result: Any = None, exception: BaseException | None = None
    ) -> None:
        self._done = True
        self._result = result
        self._exception = exception

    def __reduce__(self) -> Any:
        raise errors.SDKUsageError(
            "a Future cannot be stored inside a value; pass it directly as an argument, "
            "a map/reduce item, or return it"
        )


def value_of(value: Any) -> Any:
    """An input's value: a finished Future's result (its failure raised), or itself."""
    return value._value() if isinstance(value, Future) else value


# Exact types that are never a Future, a coroutine or a Task: ``as_input`` passes
# them through without the (ABC) instance checks, which cost more than a call's
# own hashing when every argument is checked.
PLAIN_TYPES = frozenset(
    {int, float, str, bytes, bool, type(None), list, dict, tuple, set, frozenset}
)


def as_input(value: Any) -> Any:
    """The Future a value stands for, if it is one (a coroutine of a call, a Task
    running one), else the value: what the SDK accepts where it takes a Future."""
    if type(value) in PLAIN_TYPES:
        return value
    if isinstance(value, asyncio.Task):
        inner = value.get_coro()
        if isinstance(inner, Future | FutureCoroutine):
            value = inner
    if isinstance(value, FutureCoroutine):
        value._consume()
        return value.future
    if isinstance(value, OneShot):
        value._consume()  # the SDK runs it: awaiting it later is a reuse
    return value


# -- polling ------------------------------------------------------------------------------------
def _never_started(future: Future) -> errors.InternalError:
    """A started Future whose calls are not in the store can never finish: fail it
    rather than leave its request running with nothing to run."""
    return errors.InternalError(
        f"{future!r} waits on call {future._call_id} that was never started; "
        "the wait can never finish"
    )


def _recorded_error(record: Any) -> BaseException:
    error = failures.error_of(record)
    if isinstance(error, failures.Diverged):
        raise error  # a strict replay stops the waiter too, not only this Future
    waiter = frames.current_or_none()
    return error if waiter is None else waiter.run.note(error)


def _poll_call(future: Future) -> bool:
    store = frames.process().store
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


def _poll_group(future: Future, count: int) -> bool:
    store = frames.process().store
    group = str(future._call_id)
    counts = store.group_counts(group)
    if counts.get(CallStatus.SUCCEEDED, 0) >= count:
        future._finish(
            [
                _serialization.loads(blob or b"", f"output of map item {seq}")
                for seq, blob in store.group_outputs(group)
                if seq < count
            ]
        )
        return True
    if sum(counts.values()) < count:
        future._finish(exception=_never_started(future))
        return True
    # Every item settles before the map fails, so that a replay re-runs only the
    # items that failed, not the ones a fail-fast would have skipped.
    unsettled = counts.get(CallStatus.PENDING, 0) + counts.get(CallStatus.RUNNING, 0)
    failed = any(
        counts.get(s, 0)
        for s in (CallStatus.FAILED, CallStatus.TIMED_OUT, CallStatus.CANCELLED)
    )
    if unsettled or not failed:
        return False
    for position in range(count):
        record = store.get_call(_ids.item_id(group, "map", position))
        if record is not None and record.status.final:
            if record.status is not CallStatus.SUCCEEDED:
                future._finish(exception=_recorded_error(record))
                return True
    return False


def _poll_either(future: Future, count: int | None) -> bool:
    """Poll a Future that is one call (``count`` None) or a map's group of items."""
    if future._done:
        return True
    return _poll_call(future) if count is None else _poll_group(future, count)


# -- the kinds ----------------------------------------------------------------------------------
def _refs(value: Any) -> Any:
    return value._ref() if isinstance(value, Future) else value


class CallFuture(Future):
    """One call of a function."""

    def __init__(
        self,
        function: Function[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        super().__init__()
        self.function = function
        self.args = tuple(as_input(v) for v in args)
        self.kwargs = {k: as_input(v) for k, v in kwargs.items()}

    def _inputs(self) -> list[Future]:
        return [v for v in (*self.args, *self.kwargs.values()) if isinstance(v, Future)]

    def _dependency_ids(self) -> list[str]:
        futures = [v for v in self.args if isinstance(v, Future)]
        futures += [
            self.kwargs[k]
            for k in sorted(self.kwargs)
            if isinstance(self.kwargs[k], Future)
        ]
        return [str(f._call_id) for f in futures]

    def _start(self, parent: frames.Frame, not_before_ms: float) -> None:
        name = self.function.name
        key = parent.child_key(
            ["FunctionCall", name],
            self._dependency_ids(),
            name,
            "call",
            dispatched=True,
        )
        key = dataclasses.replace(
            key,
            concurrency_key=_limits.of_call(
                self.function._spec, self.args, self.kwargs
            ),
        )
        self._call_id = key.id
        blob = _serialization.dumps_arguments(
            name,
            tuple(_refs(v) for v in self.args),
            {k: _refs(v) for k, v in self.kwargs.items()},
        )
        self._runs = not scheduler.enqueue(
            parent, key.id, [(key, blob, not_before_ms)], inputs_ran=self._inputs_run()
        )

    def _poll(self) -> bool:
        return self._done or _poll_call(self)

    def _claim(self, size: int) -> list[ClaimedCall]:
        return scheduler.claim_one(call_id=self._call_id)

    def __repr__(self) -> str:
        return f"<Future {self.function.name}(...) {self._call_id or 'unstarted'}>"


def _items(function: Function[Any, Any], items: Any, operation: str) -> Any:
    """A map's or reduce's items: one Future of a list, or a list of any iterable's
    values (Futures among them unwrapped)."""
    items = as_input(items)
    if isinstance(items, Future):
        return items
    try:
        values = list(items)
    except TypeError:
        raise errors.SDKUsageError(
            f"{function.name}.{operation}() takes an iterable of items or a Future of a "
            f"list, got {type(items).__name__}"
        ) from None
    return [as_input(v) for v in values]


class MapFuture(Future):
    """``function.map(items)``: one call per item, results in order.

    Items known when it starts are fanned out by the caller as one group of rows.
    Items that are a Future's output are not known yet: a dispatched call (kind
    ``map``) waits for them and maps them, so that the caller never blocks to start.
    """

    def __init__(self, function: Function[Any, Any], items: Any) -> None:
        super().__init__()
        self.function = function
        items = _items(function, items, "map")
        self.items_future: Future | None = items if isinstance(items, Future) else None
        self.items: list[Any] = [] if isinstance(items, Future) else items
        self.count: int | None = None

    def _inputs(self) -> list[Future]:
        if self.items_future is not None:
            return [self.items_future]
        return [v for v in self.items if isinstance(v, Future)]

    def _start(self, parent: frames.Frame, not_before_ms: float) -> None:
        name = self.function.name
        dep_ids = [str(f._call_id) for f in self._inputs()]
        if self.items_future is not None:
            key = parent.child_key(
                [f"MAP_OPERATION:{name}"], dep_ids, name, "map", dispatched=True
            )
            self._call_id = key.id
            blob = _serialization.dumps_arguments(name, (self.items_future._ref(),), {})
            self._runs = not scheduler.enqueue(
                parent,
                key.id,
                [(key, blob, not_before_ms)],
                inputs_ran=self._inputs_run(),
            )
            return
        key = parent.child_key([f"MAP_OPERATION:{name}"], dep_ids, name, "map")
        self._call_id = key.id
        self.count = len(self.items)
        if not self.items:
            self._finish([])
            return
        rows = [
            (
                CallKey(
                    id=_ids.item_id(key.id, "map", position),
                    request_id=key.request_id,
                    parent_id=parent.key.id,
                    seq=position,
                    function=name,
                    kind="map_item",
                    group_id=key.id,
                    dispatched=True,
                    concurrency_key=_limits.of_call(self.function._spec, (item,), {}),
                ),
                _serialization.dumps_arguments(name, (_refs(item),), {}),
                not_before_ms,
            )
            for position, item in enumerate(self.items)
        ]
        self._runs = not scheduler.enqueue(
            parent, key.id, rows, inputs_ran=self._inputs_run()
        )

    def _poll(self) -> bool:
        return _poll_either(self, self.count)

    def _claim(self, size: int) -> list[ClaimedCall]:
        if self.count is None:
            return scheduler.claim_one(call_id=self._call_id)
        if size > 1 and not _registry.is_flow_limited(self.function._spec):
            batch = scheduler.claim_group(str(self._call_id), size)
            if batch:
                return batch
        return scheduler.claim_one(group_id=self._call_id)

    def _ref(self) -> Ref:
        return Ref(str(self._call_id), self.count)

    def __repr__(self) -> str:
        return f"<Future {self.function.name}.map(...) {self._call_id or 'unstarted'}>"


class ReduceFuture(Future):
    """``function.reduce(items, initial)``: a left fold of sequential calls, run by a
    dispatched call of its own (kind ``reduce``) whose steps are its children.

    ``item_first`` calls ``function(item, accumulator)`` (a map result's ``reduce``)
    instead of ``function(accumulator, item)``.
    """

    def __init__(
        self,
        function: Function[Any, Any],
        items: Any,
        initial: Any = MISSING,
        *,
        item_first: bool = False,
    ) -> None:
        super().__init__()
        self.function = function
        items = _items(function, items, "reduce")
        self.items_future: Future | None = items if isinstance(items, Future) else None
        self.items: list[Any] = [] if isinstance(items, Future) else items
        self.initial = as_input(initial)
        self.item_first = item_first

    def _inputs(self) -> list[Future]:
        inputs = (
            [self.items_future]
            if self.items_future is not None
            else [v for v in self.items if isinstance(v, Future)]
        )
        if isinstance(self.initial, Future):
            inputs.insert(0, self.initial)
        return inputs

    def _start(self, parent: frames.Frame, not_before_ms: float) -> None:
        name = self.function.name
        key = parent.child_key(
            ["ReduceOperation", name],
            [str(d._call_id) for d in self._inputs()],
            name,
            "reduce",
            dispatched=True,
        )
        self._call_id = key.id
        items = [self.items_future] if self.items_future is not None else self.items
        payload = (
            _refs(self.initial),
            [_refs(v) for v in items],
            self.items_future is not None,
            self.item_first,
        )
        blob = _serialization.dumps_arguments(name, payload, {})
        self._runs = not scheduler.enqueue(
            parent, key.id, [(key, blob, not_before_ms)], inputs_ran=self._inputs_run()
        )

    def _poll(self) -> bool:
        return self._done or _poll_call(self)

    def _claim(self, size: int) -> list[ClaimedCall]:
        return scheduler.claim_one(call_id=self._call_id)

    def __repr__(self) -> str:
        return (
            f"<Future {self.function.name}.reduce(...) {self._call_id or 'unstarted'}>"
        )


class RefFuture(Future):
    """A started Future known only by its ``Ref`` (an argument that was a Future)."""

    def __init__(self, ref: Ref) -> None:
        super().__init__()
        self._call_id = ref.call_id
        self.count = ref.count
        self._started = True

    def _poll(self) -> bool:
        return _poll_either(self, self.count)

    def _claim(self, size: int) -> list[ClaimedCall]:
        if self.count is None:
            return scheduler.claim_one(call_id=self._call_id)
        return scheduler.claim_one(group_id=self._call_id)

    def __repr__(self) -> str:
        what = "call" if self.count is None else f"map of {self.count} items"
        return f"<Future of the {what} {self._call_id}>"


def resolve(value: Any) -> Any:
    """A dispatched call's argument: a ``Ref`` becomes the output it names (waited
    for here), anything else stays."""
    if not isinstance(value, Ref):
        return value
    future = RefFuture(value)
    scheduler.wait([future], None, RETURN_WHEN.ALL_COMPLETED)
    return future._value()
