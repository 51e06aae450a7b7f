"""Time, injectable: wall-clock milliseconds for records, monotonic seconds for waits.

The executor process's ``Process`` carries the clock every call uses, so tests of the
core drive time by hand (``tests/unit`` has a fake) instead of sleeping.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from cairn import errors


class Clock(Protocol):
    """What the core asks of time."""

    def now_ms(self) -> float:
        """Wall-clock milliseconds since the epoch: what records store."""

    def monotonic_s(self) -> float:
        """Seconds on a clock that never goes back: what deadlines count on."""

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds``."""


class SystemClock:
    """The machine's clocks."""

    def now_ms(self) -> float:
        """Wall-clock milliseconds."""
        return time.time() * 1000.0

    def monotonic_s(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """``time.sleep()``."""
        time.sleep(seconds)


SYSTEM = SystemClock()


def now_ms() -> float:
    """Wall-clock milliseconds, for code outside a call (requests, the CLI, the server)."""
    return time.time() * 1000.0


def non_negative_s(value: object, what: str) -> float:
    """``value`` as seconds if it is a finite number >= 0, else SDKUsageError."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise errors.SDKUsageError(
            f"{what} must be a finite number of seconds >= 0, got {value!r}"
        )
    return float(value)
