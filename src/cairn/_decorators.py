"""``@application()``, ``@function()`` and ``@cls()``, as in ``tensorlake.applications``.

Everything is checked when the decorator runs, so a mistake fails at import with a
message naming the function and the parameter.
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from cairn import _limits, _registry, _retry, errors
from cairn._execution import calls

if TYPE_CHECKING:
    from cairn._execution.futures import Future

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

ApplicationCapability = Literal["unauthenticated_requests"]
"""What ``@application(allow=[...])`` may grant (Tensorlake's type)."""

MAX_TIMEOUT_S = 172_800
_REGIONS = ("us-east-1", "eu-west-1")
_GPU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(:[1-9][0-9]*)?$")
_MISSING: Any = calls.MISSING


class Retries:
    """Retry policy of a function or an application.

    Args:
        max_retries: retries after the first attempt (0 = one attempt only).
        initial_delay: seconds before the first retry.
        max_delay: upper bound of any delay, in seconds.
        delay_multiplier: growth of the delay per retry.
    """

    def __init__(
        self,
        max_retries: int = 0,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
        delay_multiplier: float = 2.0,
    ) -> None:
        self.policy = _retry.validate(
            max_retries, initial_delay, max_delay, delay_multiplier
        )
        self.max_retries = max_retries
        self.initial_delay = float(initial_delay)
        self.max_delay = float(max_delay)
        self.delay_multiplier = float(delay_multiplier)

    def __repr__(self) -> str:
        return (
            f"Retries(max_retries={self.max_retries}, initial_delay={self.initial_delay:g}, "
            f"max_delay={self.max_delay:g}, delay_multiplier={self.delay_multiplier:g})"
        )


def _retries(value: object, where: str) -> _retry.RetryPolicy | None:
    if value is None:
        return None
    if isinstance(value, Retries):
        return value.policy
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return _retry.validate(value)
        except errors.SDKUsageError as error:
            raise errors.SDKUsageError(f"{where}: retries={value!r}: {error}") from None
    raise errors.SDKUsageError(
        f"{where}: retries must be an int or Retries(...), got {value!r}"
    )


class _FutureFactory(Generic[P, R]):
    """``f.future(...)``, ``f.future.map(...)``, ``f.future.reduce(...)``: unstarted Futures."""

    def __init__(self, function: Function[P, R]) -> None:
        self._function = function

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Future:
        return calls.future_call(self._function, args, kwargs)

    def map(self, items: Iterable[Any] | Future) -> Future:
        return calls.future_map(self._function, items)

    def reduce(
        self, items: Iterable[Any] | Future, initial: Any = _MISSING, /
    ) -> Future:
        return calls.future_reduce(self._function, items, initial)


class Function(Generic[P, R]):
    """A decorated function: call it, ``map`` it, ``reduce`` with it, or make Futures.

    Every call inside a request is a durable, checkpointed function call.
    """

    def __init__(self, spec: _registry.FunctionSpec, bound_to: Any = None) -> None:
        self._spec = spec
        self._bound_to = bound_to
        functools.update_wrapper(self, spec.fn)
        # Function-like to ``inspect`` (3.11 has no markcoroutinefunction), so that
        # inspect.iscoroutinefunction(f) answers as for the original.
        self.__code__ = getattr(spec.fn, "__code__", None)
        self.__defaults__ = getattr(spec.fn, "__defaults__", None)
        self.__kwdefaults__ = getattr(spec.fn, "__kwdefaults__", None)
        if spec.is_async and hasattr(inspect, "markcoroutinefunction"):
            # So that inspect.iscoroutinefunction(f) stays true, as for the original.
            inspect.markcoroutinefunction(self)

    @property
    def name(self) -> str:
        """The function's durable name (its ``__qualname__``)."""
        return self._spec.name

    @property
    def future(self) -> _FutureFactory[P, R]:
        """Factory of unstarted Futures."""
        return _FutureFactory(self)

    # Tensorlake's name for ``future`` before February 2026.
    awaitable = future

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return calls.call(self, args, kwargs)  # type: ignore[no-any-return]

    def map(self, items: Iterable[Any] | Future) -> list[Any]:
        """Run one call per item in parallel; results in input order.

        Items may be any iterable, or one Future of a list. The result is a list
        with a durable ``reduce(function, initial)`` (``function(item, accumulator)``).
        For an async function, a coroutine (and Future) of that list.
        """
        return calls.map(self, items)  # type: ignore[no-any-return]

    def reduce(self, items: Iterable[Any] | Future, initial: Any = _MISSING, /) -> Any:
        """Left fold ``function(accumulator, item)`` of sequential calls, each step
        checkpointed. For an async function, a coroutine (and Future) of the result."""
        return calls.reduce(self, items, initial)

    def __get__(self, instance: Any, owner: type | None = None) -> Function[P, R]:
        if instance is None:
            return self
        return Function(self._spec, bound_to=instance)

    def __reduce__(self) -> Any:
        raise errors.SDKUsageError(
            f"function {self._spec.name!r} cannot be passed as a value: pass its name, "
            "or call it"
        )

    def __repr__(self) -> str:
        return f"<cairn.Function {self._spec.name}>"

    def __str__(self) -> str:
        # Tensorlake's wording, which its error messages (and Cairn's) quote.
        return f"Tensorlake Function {self._spec.name!r}"


@overload
def function(
    description: str = "",
    cpu: float = 1.0,
    memory: float | None = None,
    ephemeral_disk: float = 10.0,
    gpu: str | list[str] | None = None,
    timeout: float = 300,
    image: Any = None,
    secrets: list[str] | None = None,
    retries: Retries | int | None = None,
    region: str | None = None,
    warm_containers: int | None = None,
    min_containers: int | None = None,
    max_containers: int | None = None,
    max_concurrency: int | None = None,
    concurrency: int | None = None,
    rate_limit: _limits.RateLimit | str | None = None,
    concurrency_key: str | None = None,
) -> Callable[[Callable[P, R]], Function[P, R]]: ...
@overload
def function(description: Callable[..., Any]) -> Any: ...
def function(
    description: Any = "",
    cpu: float = 1.0,
    memory: float | None = None,
    ephemeral_disk: float = 10.0,
    gpu: str | list[str] | None = None,
    timeout: float = 300,
    image: Any = None,
    secrets: list[str] | None = None,
    retries: Retries | int | None = None,
    region: str | None = None,
    warm_containers: int | None = None,
    min_containers: int | None = None,
    max_containers: int | None = None,
    max_concurrency: int | None = None,
    concurrency: int | None = None,
    rate_limit: _limits.RateLimit | str | None = None,
    concurrency_key: str | None = None,
) -> Any:
    """Make a function durable: every call of it inside a request is checkpointed.

    Args:
        description: free text shown in listings.
        cpu: cores (> 0), used for scheduling where the host can.
        memory: GB (> 0). When given, a call whose process grows past it is
            stopped and recorded as ``out_of_memory`` (retried by policy).
            Tensorlake's default of 1 GB is reported but not enforced.
        ephemeral_disk: GB (> 0), recorded.
        gpu: ``"H100"``, ``"A100-80GB:2"`` or a list of alternatives, recorded.
        timeout: seconds in [1, 172800] without progress before an attempt is stopped.
        image: recorded.
        secrets: names of environment variables the function needs, recorded.
        retries: ``Retries(...)`` or an int; None inherits the application's.
        region: ``"us-east-1"``, ``"eu-west-1"`` or None, recorded.
        warm_containers: recorded.
        min_containers: recorded.
        max_containers: recorded.
        max_concurrency: cap on concurrently running calls of this function, or of
            each value of ``concurrency_key`` (Cairn; counted across every worker).
        concurrency: accepted for compatibility, recorded.
        rate_limit: ``RateLimit(calls, period_s, burst)`` or ``"60/min"``: calls
            over the rate wait, pending, across every worker (Cairn).
        concurrency_key: a parameter's name: ``max_concurrency`` then caps the
            running calls per value of that argument, e.g. per customer (Cairn).

    Raises:
        SDKUsageError: the decorator was not called, or a parameter is invalid.
    """
    if callable(description) and not isinstance(description, str):
        raise errors.SDKUsageError(
            f"@function must be called: write @function() above "
            f"{getattr(description, '__qualname__', description)!r}"
        )

    def decorate(fn: Callable[P, R]) -> Function[P, R]:
        application_spec = None
        if isinstance(fn, Function):
            if fn._spec.function_decorated:
                raise errors.SDKUsageError(f"@function() applied twice to {fn.name!r}")
            # Written above @application() (Tensorlake accepts either order): the
            # application's options stay, this decorator's replace the defaults.
            application_spec = fn._spec.application
            fn = fn._spec.fn
        if not callable(fn):
            raise errors.SDKUsageError(
                f"@function() must decorate a function, got {fn!r}"
            )
        name = fn.__qualname__
        where = f"@function() on {name!r}"
        if not isinstance(description, str):
            raise errors.SDKUsageError(f"{where}: description must be a str")
        timeout_s = _timeout(timeout, where)
        for label, value in (
            ("cpu", cpu),
            ("memory", 1.0 if memory is None else memory),
            ("ephemeral_disk", ephemeral_disk),
        ):
            _positive(value, label, where)
        _gpu(gpu, where)
        if secrets is not None and (
            not isinstance(secrets, list)
            or not all(isinstance(s, str) and s for s in secrets)
        ):
            raise errors.SDKUsageError(
                f"{where}: secrets must be a list of non-empty strings"
            )
        if region is not None and region not in _REGIONS:
            raise errors.SDKUsageError(
                f"{where}: region must be one of {', '.join(_REGIONS)} or None, got {region!r}"
            )
        _containers(warm_containers, min_containers, max_containers, where)
        limits: tuple[tuple[str, int | None], ...] = (
            ("max_concurrency", max_concurrency),
            ("concurrency", concurrency),
        )
        for label, limit in limits:
            if limit is not None and (
                isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
            ):
                raise errors.SDKUsageError(
                    f"{where}: {label} must be an int >= 1, got {limit!r}"
                )
        rate = _limits.rate_limit(rate_limit, where)
        key = _limits.concurrency_key(concurrency_key, fn, max_concurrency, where)
        spec = _registry.FunctionSpec(
            name=name,
            fn=fn,
            module=getattr(fn, "__module__", "") or "",
            timeout_s=timeout_s,
            retries=_retries(retries, where),
            description=description,
            resources={
                "cpu": cpu,
                "memory": 1.0 if memory is None else memory,
                "ephemeral_disk": ephemeral_disk,
                "gpu": gpu,
                "image": image,
                "secrets": list(secrets or []),
                "region": region,
                "warm_containers": warm_containers,
                "min_containers": min_containers,
                "max_containers": max_containers,
                "concurrency": concurrency,
            },
            max_concurrency=max_concurrency,
            concurrency_key=key,
            rate_limit=rate,
            memory_limit_bytes=None if memory is None else int(memory * 1024**3),
            is_async=_registry.is_coroutine_function(fn),
            application=application_spec,
        )
        _registry.register(spec)
        return Function(spec)

    return decorate


def application(
    tags: Any = None,
    retries: Retries | int | None = None,
    region: str | None = None,
    allow: list[ApplicationCapability] | None = None,
) -> Callable[[Function[P, R]], Function[P, R]]:
    """Make a durable function an application: an entry point for requests.

    Stack it with ``@function()``, above or below it (Tensorlake accepts both
    orders). The application's name is the function's ``__qualname__``; its
    inputs and output cross the boundary as JSON, validated by pydantic against
    the type hints; a ``File`` parameter or return is raw bytes with a content
    type (the request's or the response's body).

    Args:
        tags: string keys and values, recorded.
        retries: default ``Retries`` (or int) of every function of the application.
        region: ``"us-east-1"``, ``"eu-west-1"`` or None, recorded.
        allow: only ``["unauthenticated_requests"]``, recorded.

    Raises:
        SDKUsageError: the decorator was not called, does not decorate a function,
            or a parameter is invalid. Running an application that lacks
            ``@function()`` raises it too.
    """
    if callable(tags) and not isinstance(tags, dict):
        raise errors.SDKUsageError(
            f"@application must be called: write @application() above "
            f"{getattr(tags, '__qualname__', tags)!r}"
        )

    def decorate(fn: Function[P, R]) -> Function[P, R]:
        if not isinstance(fn, Function):
            if not inspect.isfunction(fn) and not inspect.ismethod(fn):
                name = getattr(fn, "__qualname__", repr(fn))
                raise errors.SDKUsageError(
                    f"@application() on {name!r} must decorate a function"
                )
            # Below @function(): made a Function with default options now, which
            # the @function() above then replaces (its application kept).
            fn = function()(fn)
            fn._spec.function_decorated = False
        where = f"@application() on {fn.name!r}"
        tag_map = {} if tags is None else tags
        if not isinstance(tag_map, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in tag_map.items()
        ):
            raise errors.SDKUsageError(
                f"{where}: tags must map non-empty strings to strings, got {tags!r}"
            )
        if region is not None and region not in _REGIONS:
            raise errors.SDKUsageError(
                f"{where}: region must be one of {', '.join(_REGIONS)} or None, got {region!r}"
            )
        allowed: list[str] = list(allow or [])
        if any(item != "unauthenticated_requests" for item in allowed):
            raise errors.SDKUsageError(
                f"{where}: allow may only contain 'unauthenticated_requests', got {allow!r}"
            )
        _check_parameters(fn)
        policy = _retries(retries, where)
        fn._spec.application = _registry.ApplicationSpec(
            tags=dict(tag_map),
            retries=policy or _retry.RetryPolicy(),
            region=region,
            allow=allowed,
        )
        _registry.register(fn._spec)
        return fn

    return decorate


def check_runnable(spec: _registry.FunctionSpec) -> None:
    """Refuse to run as an application a function that is not a complete one.

    Raises:
        SDKUsageError: it lacks ``@application()`` or ``@function()`` (Tensorlake's
            messages).
    """
    if spec.application is None:
        raise errors.SDKUsageError(
            f"Tensorlake Function {spec.name!r} is not an application function and "
            "cannot be run as an application. To make it an application function, "
            "add @application() decorator to it."
        )
    if not spec.function_decorated:
        raise errors.SDKUsageError(
            f"Application function {spec.name!r} is missing @function() decorator. "
            "An application function needs both @application() and @function() "
            "decorators."
        )


def cls(init_timeout: int | None = None) -> Callable[[type[T]], type[T]]:
    """Mark a class whose ``@function()`` methods share one instance per process.

    ``__init__`` becomes a no-op for user code; the real one runs once per executor
    process, the first time one of the class's functions runs there.

    Raises:
        SDKUsageError: the decorator was not called, or init_timeout is invalid.
    """
    if isinstance(init_timeout, type):
        raise errors.SDKUsageError(
            f"@cls must be called: write @cls() above {init_timeout.__qualname__!r}"
        )

    def decorate(klass: type[T]) -> type[T]:
        if init_timeout is not None:
            _timeout(init_timeout, f"@cls(init_timeout=...) on {klass.__qualname__!r}")
        original = klass.__init__

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            # Tensorlake's contract: constructing the class in user code is free.
            return None

        _registry.register_class(klass, original)
        klass.__init__ = __init__  # type: ignore[method-assign]
        for value in vars(klass).values():
            if isinstance(value, Function):
                value._spec.class_name = klass.__qualname__
        return klass

    return decorate


def _timeout(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.SDKUsageError(
            f"{where}: timeout must be a number of seconds, got {value!r}"
        )
    if not math.isfinite(value) or not 1 <= value <= MAX_TIMEOUT_S:
        raise errors.SDKUsageError(
            f"{where}: timeout must be in [1, {MAX_TIMEOUT_S}] seconds, got {value!r}"
        )
    return float(value)


def _positive(value: object, label: str, where: str) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise errors.SDKUsageError(
            f"{where}: {label} must be a finite number > 0, got {value!r}"
        )


def _gpu(value: object, where: str) -> None:
    if value is None:
        return
    options = value if isinstance(value, list) else [value]
    if not options or not all(isinstance(g, str) and _GPU.match(g) for g in options):
        raise errors.SDKUsageError(
            f"{where}: gpu must be 'MODEL' or 'MODEL:COUNT' (or a list of them), got {value!r}"
        )


def _containers(warm: object, low: object, high: object, where: str) -> None:
    for label, value in (
        ("warm_containers", warm),
        ("min_containers", low),
        ("max_containers", high),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise errors.SDKUsageError(
                f"{where}: {label} must be an int >= 0, got {value!r}"
            )
    if isinstance(high, int):
        if isinstance(low, int) and low > high:
            raise errors.SDKUsageError(
                f"{where}: min_containers ({low}) > max_containers ({high})"
            )
        if isinstance(warm, int) and warm > high:
            raise errors.SDKUsageError(
                f"{where}: warm_containers ({warm}) > max_containers ({high})"
            )


def _check_parameters(fn: Function[Any, Any]) -> None:
    signature = inspect.signature(fn._spec.fn)
    for parameter in signature.parameters.values():
        if parameter.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            kind = parameter.kind.description
            raise errors.SDKUsageError(
                f"@application() on {fn.name!r}: parameter {parameter.name!r} is {kind}; "
                "application parameters must be plain positional-or-keyword parameters"
            )
    from cairn import _serialization

    try:
        _serialization.boundary(fn._spec.fn)
    except Exception as error:
        raise errors.SDKUsageError(
            f"@application() on {fn.name!r}: its type hints cannot be mapped to JSON: {error}"
        ) from error
