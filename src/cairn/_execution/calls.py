"""What a decorated function does when called: ``f(...)``, ``f.map``, ``f.reduce``
and the ``f.future`` factory, for sync and async functions.

A sync function's call blocks and runs inline (checkpointed, in this process). An
async function's call returns a Future that is also a coroutine: awaiting it runs
the call inline on the caller's event loop; passing it to the SDK (an argument, an
item, a tail call) or ``run()`` dispatches it instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cairn import errors

from . import coroutines, driver, frames, futures, scheduler
from .futures import Future

if TYPE_CHECKING:
    from cairn._decorators import Function

RETURN_WHEN = scheduler.RETURN_WHEN
MISSING = futures.MISSING


class MapResult(list):  # type: ignore[type-arg]
    """What a blocking ``map`` returns: the outputs in input order, a ``list`` (and
    checkpointed as a plain list), with a durable ``reduce``."""

    def reduce(self, function: Function[Any, Any], initial: Any = MISSING, /) -> Any:
        """Fold the outputs with ``function(item, accumulator)``, one checkpointed call
        per item, starting from ``initial`` (the first output when omitted).

        The item comes first, as in Tensorlake's batch example
        (``results.reduce(aggregate_results, {"documents": []})``); ``Function.reduce``
        calls ``function(accumulator, item)`` as ``functools.reduce`` does.
        """
        if not hasattr(function, "_spec"):
            raise errors.SDKUsageError(
                f"reduce() takes a @function(), got {function!r}: each step is a "
                "checkpointed call of it"
            )
        future = futures.ReduceFuture(function, list(self), initial, item_first=True)
        return reduce_blocking(future)

    def __reduce__(self) -> Any:
        return (list, (list(self),))


# -- factories ----------------------------------------------------------------------------------
def future_call(
    function: Function[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Future:
    """``f.future(...)``: an unstarted call."""
    return futures.CallFuture(function, args, kwargs)


def future_map(function: Function[Any, Any], items: Any) -> Future:
    """``f.future.map(items)``: an unstarted map."""
    return futures.MapFuture(function, items)


def future_reduce(function: Function[Any, Any], items: Any, initial: Any) -> Future:
    """``f.future.reduce(items, initial)``: an unstarted reduce."""
    return futures.ReduceFuture(function, items, initial)


# -- calls --------------------------------------------------------------------------------------
def call(
    function: Function[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``f(...)``: the output (sync), or a coroutine Future of it (async)."""
    if function._spec.is_async:
        return AsyncCall(function, args, kwargs)
    return call_blocking(function, args, kwargs)


def map(function: Function[Any, Any], items: Any) -> Any:
    """``f.map(items)``: the outputs (sync), or a coroutine Future of them (async)."""
    if function._spec.is_async:
        return AsyncMap(function, items)
    return map_blocking(function, items)


def reduce(function: Function[Any, Any], items: Any, initial: Any) -> Any:
    """``f.reduce(items, initial)``: the fold (sync), or a coroutine Future of it."""
    if function._spec.is_async:
        return AsyncReduce(function, items, initial)
    return reduce_blocking(futures.ReduceFuture(function, items, initial))


def _resolve_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any], list[str]]:
    """Start Future arguments, wait for them, and return plain values plus their ids."""
    if _all_plain(args) and _all_plain(kwargs.values()):
        return args, kwargs, []  # nothing to unwrap: no copies
    args = tuple(futures.as_input(v) for v in args)
    kwargs = {k: futures.as_input(v) for k, v in kwargs.items()}
    pending = [v for v in args if isinstance(v, Future)]
    pending += [kwargs[k] for k in sorted(kwargs) if isinstance(kwargs[k], Future)]
    if not pending:
        return args, kwargs, []
    for future in pending:
        if not future._started:
            scheduler.start(future)
    scheduler.wait(pending, None, RETURN_WHEN.ALL_COMPLETED)
    return (
        tuple(futures.value_of(v) for v in args),
        {k: futures.value_of(v) for k, v in kwargs.items()},
        [str(f._call_id) for f in pending],
    )


def _all_plain(values: Iterable[Any]) -> bool:
    plain = futures.PLAIN_TYPES
    for value in values:
        if type(value) not in plain:
            return False
    return True


def call_blocking(
    function: Function[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``f(x)`` in sync code: a checkpointed call run in this process."""
    parent = frames.current()
    args, kwargs, dep_ids = _resolve_arguments(args, kwargs)
    spec = function._spec
    key = parent.child_key(["FunctionCall", spec.name], dep_ids, spec.name, "call")
    return driver.run_inline(parent, key, spec, args, kwargs)


def map_blocking(function: Function[Any, Any], items: Any) -> MapResult:
    """``f.map(items)`` in sync code: every item dispatched, waited for together."""
    return MapResult(futures.MapFuture(function, items).result())


def reduce_blocking(future: futures.ReduceFuture) -> Any:
    """A reduce in sync code: one checkpointed call holding the steps, run here."""
    parent = frames.current()
    inputs = future._inputs()
    for dependency in inputs:
        if not dependency._started:
            scheduler.start(dependency)
    if inputs:
        scheduler.wait(inputs, None, RETURN_WHEN.ALL_COMPLETED)
    initial, items = _reduce_inputs(future)
    spec = future.function._spec
    key = parent.child_key(
        ["ReduceOperation", spec.name],
        [str(d._call_id) for d in inputs],
        spec.name,
        "reduce",
    )

    def steps(frame: frames.Frame, args: tuple[Any, ...], _: dict[str, Any]) -> Any:
        return driver.fold(frame, spec, args[0], args[1], future.item_first)

    # The inputs are the reduce's arguments: a replay whose items changed does not
    # get the old fold's output.
    return driver.run_inline(
        parent, key, driver.reduce_spec(spec), (initial, items), {}, body=steps
    )


def _reduce_inputs(future: futures.ReduceFuture) -> tuple[Any, list[Any]]:
    initial = futures.value_of(future.initial)
    if future.items_future is None:
        return initial, [futures.value_of(v) for v in future.items]
    items = futures.value_of(future.items_future)
    if not isinstance(items, list | tuple):
        raise errors.SDKUsageError(
            f"{future.function.name}.reduce() got a Future whose result is not a list"
        )
    return initial, list(items)


# -- async functions: Futures that are coroutines -------------------------------------------------
class AsyncCall(coroutines.OneShot, futures.CallFuture):
    """What calling an async function returns: a Future, and a coroutine that runs
    the call inline on the caller's event loop when awaited."""

    _inline = False

    async def _once(self) -> Any:
        if self._started:  # run() or the SDK dispatched it: wait for that
            return await self._await()
        parent = frames.current()
        self._started = True
        self._inline = True
        try:
            value = await self._run_inline(parent)
        except Exception as error:
            self._finish(exception=error)
            raise
        self._finish(value)
        return value

    async def _run_inline(self, parent: frames.Frame) -> Any:
        inputs = self._inputs()
        for future in inputs:
            if not future._started:
                scheduler.start(future)
        if inputs:
            await scheduler.wait_async(inputs, None, RETURN_WHEN.ALL_COMPLETED)
        args = tuple(futures.value_of(v) for v in self.args)
        kwargs = {k: futures.value_of(v) for k, v in self.kwargs.items()}
        name = self.function.name
        key = parent.child_key(
            ["FunctionCall", name], self._dependency_ids(), name, "call"
        )
        self._call_id = key.id
        return await driver.run_inline_async(
            parent, key, self.function._spec, args, kwargs
        )

    def _poll(self) -> bool:
        # An inline call has no row until it commits: only its own await finishes it.
        return self._done if self._inline else super()._poll()

    def _claim(self, size: int) -> list[Any]:
        return [] if self._inline else super()._claim(size)

    def __repr__(self) -> str:
        return f"<coroutine {self.function.name}(...) {self._call_id or 'unstarted'}>"


class AsyncMap(coroutines.OneShot, futures.MapFuture):
    """``f.map(items)`` of an async function: a Future and a coroutine."""

    async def _once(self) -> Any:
        return await self._await()


class AsyncReduce(coroutines.OneShot, futures.ReduceFuture):
    """``f.reduce(items, initial)`` of an async function: a Future and a coroutine."""

    async def _once(self) -> Any:
        return await self._await()
