"""Futures: lazy handles on calls, maps and reduces, as in ``tensorlake.applications``."""

from __future__ import annotations

import enum
import math
from collections.abc import Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any

from cairn import errors

if TYPE_CHECKING:
    from cairn._decorators import Function


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


_MISSING: Any = _Missing()


class RETURN_WHEN(enum.Enum):
    """When ``Future.wait`` returns."""

    FIRST_COMPLETED = 0
    FIRST_FAILURE = 1
    ALL_COMPLETED = 2


class Future:
    """A call that will run (or runs) durably; its result is a checkpoint."""

    def __init__(self) -> None:
        self._started = False
        self._done = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._call_id: str | None = None
        self._start_delay_s = 0.0

    # -- starting --------------------------------------------------------------------
    def run(self) -> Future:
        """Start now. Raises SDKUsageError if it already started."""
        if self._started:
            raise errors.SDKUsageError(f"{self!r} is already running")
        from cairn import _runtime

        _runtime.start_future(self)
        return self

    def run_later(self, start_delay: float) -> Future:
        """Start after ``start_delay`` seconds (durably: a crash does not reset it)."""
        if (
            isinstance(start_delay, bool)
            or not isinstance(start_delay, int | float)
            or not math.isfinite(start_delay)
            or start_delay < 0
        ):
            raise errors.SDKUsageError(
                f"run_later(start_delay=...) must be a finite number >= 0, got {start_delay!r}"
            )
        self._start_delay_s = float(start_delay)
        return self.run()

    # -- results ---------------------------------------------------------------------------
    def result(self, timeout: float | None = None) -> Any:
        """Wait for the result (starting the Future if needed) and return it.

        Raises:
            TimeoutError: ``timeout`` seconds passed first; the Future fails with it.
            FunctionError: the call failed for good.
            RequestError: the call raised RequestError.
        """
        from cairn import _runtime

        if not self._started:
            self.run()
        if not self._done:
            _runtime.wait_futures([self], timeout, RETURN_WHEN.ALL_COMPLETED)
        if self._exception is not None:
            raise self._exception
        return self._result

    def done(self) -> bool:
        """Whether the Future finished (succeeded or failed)."""
        if self._done or not self._started:
            return self._done
        from cairn import _runtime

        return _runtime.poll_future(self)

    @property
    def exception(self) -> BaseException | None:
        """The failure of a finished Future, or None."""
        self.done()
        return self._exception

    def coroutine(self) -> Coroutine[Any, Any, Any]:
        """A coroutine that starts the Future if needed and returns its result."""
        return self._await()

    async def _await(self) -> Any:
        from cairn import _runtime

        if not self._started:
            self.run()
        if not self._done:
            await _runtime.wait_futures_async([self], None, RETURN_WHEN.ALL_COMPLETED)
        if self._exception is not None:
            raise self._exception
        return self._result

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
        from cairn import _runtime

        futures = list(futures)
        if not all(isinstance(f, Future) for f in futures):
            raise errors.SDKUsageError("Future.wait() takes an iterable of Futures")
        if not isinstance(return_when, RETURN_WHEN):
            raise errors.SDKUsageError(
                f"return_when must be a RETURN_WHEN, got {return_when!r}"
            )
        for future in futures:
            if not future._started:
                future.run()
        _runtime.wait_futures(futures, timeout, return_when)
        done = [f for f in futures if f._done]
        return done, [f for f in futures if not f._done]

    # -- internals ----------------------------------------------------------------------------
    def _finish(
        self, result: Any = None, exception: BaseException | None = None
    ) -> None:
        self._done = True
        self._result = result
        self._exception = exception

    def _dependencies(self) -> list[Future]:
        return []

    def __reduce__(self) -> Any:
        raise errors.SDKUsageError(
            "a Future cannot be stored inside a value; pass it directly as an argument, "
            "a map/reduce item, or return it"
        )


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
        self.args = args
        self.kwargs = kwargs

    def _dependencies(self) -> list[Future]:
        return [v for v in (*self.args, *self.kwargs.values()) if isinstance(v, Future)]

    def __repr__(self) -> str:
        return f"<Future {self.function.name}(...) {self._call_id or 'unstarted'}>"


class MapFuture(Future):
    """``function.map(items)``: one call per item, results in order."""

    def __init__(
        self, function: Function[Any, Any], items: Iterable[Any] | Future
    ) -> None:
        super().__init__()
        self.function = function
        if isinstance(items, Future):
            self.items_future: Future | None = items
            self.items: list[Any] = []
        else:
            if isinstance(items, str | bytes) or not isinstance(items, Iterable):
                raise errors.SDKUsageError(
                    f"{function.name}.map() takes an iterable of items or a Future of a "
                    f"list, got {type(items).__name__}"
                )
            self.items_future = None
            self.items = list(items)
        self.count = 0

    def _dependencies(self) -> list[Future]:
        if self.items_future is not None:
            return [self.items_future]
        return [v for v in self.items if isinstance(v, Future)]

    def __repr__(self) -> str:
        return f"<Future {self.function.name}.map(...) {self._call_id or 'unstarted'}>"


class ReduceFuture(Future):
    """``function.reduce(items, initial)``: a left fold of sequential calls."""

    def __init__(
        self,
        function: Function[Any, Any],
        items: Iterable[Any] | Future,
        initial: Any = _MISSING,
    ) -> None:
        super().__init__()
        self.function = function
        if isinstance(items, Future):
            self.items_future: Future | None = items
            self.items: list[Any] = []
        else:
            if isinstance(items, str | bytes) or not isinstance(items, Iterable):
                raise errors.SDKUsageError(
                    f"{function.name}.reduce() takes an iterable of items or a Future of a "
                    f"list, got {type(items).__name__}"
                )
            self.items_future = None
            self.items = list(items)
        self.initial = initial

    def _dependencies(self) -> list[Future]:
        deps = (
            [self.items_future]
            if self.items_future is not None
            else [v for v in self.items if isinstance(v, Future)]
        )
        if isinstance(self.initial, Future):
            deps.insert(0, self.initial)
        return deps

    def __repr__(self) -> str:
        return (
            f"<Future {self.function.name}.reduce(...) {self._call_id or 'unstarted'}>"
        )


class RefFuture(Future):
    """A started call known only by id (an argument that was a Future); a map's
    group when ``count`` is its number of items."""

    def __init__(self, call_id: str, count: int | None = None) -> None:
        super().__init__()
        self._call_id = call_id
        self.count = count
        self._started = True

    def __repr__(self) -> str:
        what = "call" if self.count is None else f"map of {self.count} items"
        return f"<Future of the {what} {self._call_id}>"


MISSING = _MISSING
