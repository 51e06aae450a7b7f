"""Flow control of a function, as ``@function()`` declares it: a rate limit (calls
per period, with a burst) and a concurrency key (the argument whose value
``max_concurrency`` counts per). The store enforces both in the claim, across every
worker (``store/_flow.py``); here, the declarations, checked when decorated.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cairn import errors
from cairn.store import Bucket

_PERIODS_S = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_SIMPLE = re.compile(r"^\s*(\d+)\s*/\s*(\d*\.?\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` starts of a function per ``period_s`` seconds, across
    every worker, paced evenly, with up to ``burst`` at once after a quiet spell
    (a token bucket: any window of ``period_s`` sees at most ``calls + burst``
    starts). A call over the rate waits, pending: no failure, no retry used.

    ``@function(rate_limit="60/min")`` is ``RateLimit(calls=60, period_s=60)``.
    """

    calls: int
    period_s: float = 60.0
    burst: int = 1

    def __post_init__(self) -> None:
        for label, value in (("calls", self.calls), ("burst", self.burst)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise errors.SDKUsageError(
                    f"RateLimit: {label} must be an int >= 1, got {value!r}"
                )
        period = self.period_s
        if (
            isinstance(period, bool)
            or not isinstance(period, int | float)
            or not math.isfinite(period)
            or period <= 0
        ):
            raise errors.SDKUsageError(
                f"RateLimit: period_s must be a number of seconds > 0, got {period!r}"
            )

    @property
    def bucket(self) -> Bucket:
        """The token bucket the store keeps for it."""
        return Bucket(per_ms=self.calls / (self.period_s * 1000.0), burst=self.burst)

    def __str__(self) -> str:
        return f"{self.calls} per {self.period_s:g}s, burst {self.burst}"


def rate_limit(value: object, where: str) -> RateLimit | None:
    """``rate_limit=`` as given to ``@function()``, or SDKUsageError naming it."""
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, str):
        match = _SIMPLE.match(value.lower())
        unit = _PERIODS_S.get(match.group(3).rstrip("s") or "s") if match else None
        if match and unit is not None:
            count = float(match.group(2)) if match.group(2) else 1.0
            try:
                return RateLimit(calls=int(match.group(1)), period_s=count * unit)
            except errors.SDKUsageError as error:
                raise errors.SDKUsageError(
                    f"{where}: rate_limit {value!r}: {error}"
                ) from None
        raise errors.SDKUsageError(
            f"{where}: rate_limit must be RateLimit(...) or 'N/period' such as "
            f"'60/min', '5/s' or '1000/hour', got {value!r}"
        )
    raise errors.SDKUsageError(
        f"{where}: rate_limit must be RateLimit(...) or a string such as '60/min', "
        f"got {value!r}"
    )


def concurrency_key(
    value: object, fn: Callable[..., Any], max_concurrency: int | None, where: str
) -> str | None:
    """``concurrency_key=``: a parameter of ``fn``, with ``max_concurrency`` (the
    cap per key), or SDKUsageError naming it."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise errors.SDKUsageError(
            f"{where}: concurrency_key must be a parameter name, got {value!r}"
        )
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    if value not in parameters or parameters[value].kind in (
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    ):
        raise errors.SDKUsageError(
            f"{where}: concurrency_key {value!r} is not a parameter of "
            f"{fn.__qualname__}() (its parameters: {', '.join(parameters) or 'none'})"
        )
    if max_concurrency is None:
        raise errors.SDKUsageError(
            f"{where}: concurrency_key {value!r} needs max_concurrency=N, the number "
            f"of calls that may run at once per value of {value!r}"
        )
    return value


def key_value(
    fn: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """The value of parameter ``name`` in a call, as the text the store counts by
    (a string as it is, anything else as JSON); None when it cannot be known yet
    (it is a Future's output) or the arguments do not bind."""
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    value = bound.arguments.get(name)
    if isinstance(value, str):
        return value
    if hasattr(value, "_call_id"):  # a Future: its value is not known yet
        return None
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)


def of_call(spec: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The concurrency key of a call of ``spec`` (a ``FunctionSpec``), or None."""
    name = spec.concurrency_key
    return None if name is None else key_value(spec.fn, name, args, kwargs)


#: Request priorities: claims take the due calls of higher ones first.
PRIORITY_RANGE = (-1_000_000, 1_000_000)


def priority(value: object, where: str) -> int:
    """A request's priority: an int (or its text, from a header or the command
    line) within ``PRIORITY_RANGE``, or SDKUsageError naming ``where``."""
    number: object = value
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    low, high = PRIORITY_RANGE
    if (
        isinstance(number, bool)
        or not isinstance(number, int)
        or not low <= number <= high
    ):
        raise errors.SDKUsageError(
            f"{where} must be an integer from {low} to {high} (higher runs first), "
            f"got {value!r}"
        )
    return number
