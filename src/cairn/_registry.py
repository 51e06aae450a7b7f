"""The one process-wide table: function name -> spec, as Tensorlake's global namespace.

Replay and recovery find code by name, so names must be unique. Workers forked
before a function was registered cannot run it: ``generation`` tells the engine
to start fresh executor processes.
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cairn import _retry, errors
from cairn.store import FlowLimits

DEFAULT_TIMEOUT_S = 300.0


@dataclass(kw_only=True)
class ApplicationSpec:
    """What ``@application()`` adds to a function."""

    tags: dict[str, str]
    retries: _retry.RetryPolicy
    region: str | None
    allow: list[str]


@dataclass(kw_only=True)
class FunctionSpec:
    """Everything Cairn knows about one decorated function."""

    name: str
    fn: Callable[..., Any]
    module: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    retries: _retry.RetryPolicy | None = None
    description: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    max_concurrency: int | None = None
    #: With it, ``max_concurrency`` caps the running calls per value of this
    #: parameter instead of the function's.
    concurrency_key: str | None = None
    rate_limit: Any = None
    """A ``_limits.RateLimit``, or None."""
    memory_limit_bytes: int | None = None
    application: ApplicationSpec | None = None
    #: False while only ``@application()`` has decorated it: ``@function()`` written
    #: above ``@application()`` comes next and sets the function's own options.
    function_decorated: bool = True
    class_name: str | None = None
    is_async: bool = False

    def retry_policy(self, application: str = "") -> _retry.RetryPolicy:
        """The function's retries, else its application's, else none (Tensorlake's rule)."""
        if self.retries is not None:
            return self.retries
        app = _functions.get(application)
        if app is not None and app.application is not None:
            return app.application.retries
        return _retry.RetryPolicy()


@dataclass
class _ClassState:
    cls: type
    init: Callable[..., None]
    instance: Any = None


_functions: dict[str, FunctionSpec] = {}
_classes: dict[str, _ClassState] = {}
_versions: dict[str, str] = {}
generation = 0


def register(spec: FunctionSpec) -> None:
    """Add a function; a name already taken by another module is an error."""
    global generation
    existing = _functions.get(spec.name)
    if existing is not None and existing.module != spec.module:
        raise errors.SDKUsageError(
            f"function name {spec.name!r} is defined twice: in module {existing.module!r} "
            f"and in {spec.module!r}; names must be unique across an application"
        )
    _functions[spec.name] = spec
    _versions.pop(spec.name, None)
    generation += 1


def names() -> tuple[str, ...]:
    """Every registered function's name, sorted."""
    return tuple(sorted(_functions))


def code_version(name: str) -> str | None:
    """A version of a function's code: a hash of its module's source file (of its
    name, when the source cannot be read), so that workers running other code are
    told apart; None for a function not loaded. Read once per process."""
    version = _versions.get(name)
    spec = _functions.get(name)
    if version is None and spec is not None:
        module = sys.modules.get(spec.module)
        path = getattr(module, "__file__", None)
        try:
            with open(path or "", "rb") as source:
                text = source.read()
        except OSError:
            text = spec.module.encode()
        version = _versions[name] = hashlib.sha256(text).hexdigest()[:12]
    return version


def concurrency_caps() -> dict[str, int]:
    """``max_concurrency`` of every function that has one for the whole function."""
    return {
        name: spec.max_concurrency
        for name, spec in _functions.items()
        if spec.max_concurrency is not None and spec.concurrency_key is None
    }


def flow_limits() -> FlowLimits | None:
    """Rate limits and caps per concurrency key of the loaded functions; None
    when there are none (claims then skip the checks)."""
    limits = FlowLimits(
        rates={
            name: spec.rate_limit.bucket
            for name, spec in _functions.items()
            if spec.rate_limit is not None
        },
        key_caps={
            name: spec.max_concurrency
            for name, spec in _functions.items()
            if spec.max_concurrency is not None and spec.concurrency_key is not None
        },
    )
    return limits or None


def is_flow_limited(spec: FunctionSpec) -> bool:
    """Whether each call of the function must be claimed alone, under limits
    counted in the store (not in batches)."""
    return spec.max_concurrency is not None or spec.rate_limit is not None


def get(name: str) -> FunctionSpec:
    """The spec of a registered function."""
    try:
        return _functions[name]
    except KeyError:
        raise errors.InternalError(
            f"function {name!r} is not defined in the loaded code"
        ) from None


def find(name: str) -> FunctionSpec | None:
    """The spec, or None."""
    return _functions.get(name)


def applications() -> list[FunctionSpec]:
    """Every registered application."""
    return [spec for spec in _functions.values() if spec.application is not None]


def register_class(cls: type, init: Callable[..., None]) -> None:
    """Remember a ``@cls`` class and its real ``__init__``."""
    _classes[cls.__qualname__] = _ClassState(cls=cls, init=init)


def instance_of(class_name: str) -> Any:
    """The one instance of a ``@cls`` class in this process, created on first use."""
    state = _classes[class_name]
    if state.instance is None:
        instance: Any = object.__new__(state.cls)
        state.init(instance)
        state.instance = instance
    return state.instance


def is_coroutine_function(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` returns a coroutine."""
    return inspect.iscoroutinefunction(fn)
