"""Retry policy: pure functions of the policy, the attempt number and a random draw."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from cairn import errors


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a failed call is retried."""

    max_retries: int = 0
    """Retries after the first attempt; 0 means one attempt only."""
    initial_delay_s: float = 1.0
    """Delay before the first retry."""
    max_delay_s: float = 60.0
    """Upper bound of any delay."""
    delay_multiplier: float = 2.0
    """Growth of the delay per retry."""

    def delay_s(self, failed_attempts: int, draw: float | None = None) -> float:
        """Delay before attempt ``failed_attempts + 1``, with "equal jitter".

        Half of the exponential delay is kept and the other half is drawn at random,
        so that many calls failing together (a 429 storm) do not retry in lockstep,
        yet no retry comes sooner than half the configured delay.
        """
        exponent = max(failed_attempts - 1, 0)
        base = min(
            self.max_delay_s, self.initial_delay_s * self.delay_multiplier**exponent
        )
        if draw is None:
            draw = random.random()
        return base / 2 + base / 2 * draw

    def allows_another(self, failed_attempts: int) -> bool:
        """Whether a call that has failed ``failed_attempts`` times may run again."""
        return failed_attempts < 1 + self.max_retries


def validate(
    max_retries: object,
    initial_delay: object = 1.0,
    max_delay: object = 60.0,
    delay_multiplier: object = 2.0,
) -> RetryPolicy:
    """Check the fields of a ``Retries`` and build its policy."""
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise errors.SDKUsageError(
            f"Retries(max_retries=...) must be an int, got {max_retries!r}"
        )
    if not 0 <= max_retries <= 100:
        raise errors.SDKUsageError(
            f"Retries(max_retries=...) must be in [0, 100], got {max_retries}"
        )
    values: dict[str, float] = {}
    for name, value in (
        ("initial_delay", initial_delay),
        ("max_delay", max_delay),
        ("delay_multiplier", delay_multiplier),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise errors.SDKUsageError(
                f"Retries({name}=...) must be a number, got {value!r}"
            )
        if not math.isfinite(value) or value < 0:
            raise errors.SDKUsageError(
                f"Retries({name}=...) must be finite and >= 0, got {value!r}"
            )
        values[name] = float(value)
    if values["delay_multiplier"] < 1:
        raise errors.SDKUsageError(
            f"Retries(delay_multiplier=...) must be >= 1, got {delay_multiplier!r}"
        )
    if values["max_delay"] < values["initial_delay"]:
        raise errors.SDKUsageError(
            "Retries(max_delay=...) must be >= initial_delay, got "
            f"max_delay={max_delay!r} < initial_delay={initial_delay!r}"
        )
    return RetryPolicy(
        max_retries=max_retries,
        initial_delay_s=values["initial_delay"],
        max_delay_s=values["max_delay"],
        delay_multiplier=values["delay_multiplier"],
    )
