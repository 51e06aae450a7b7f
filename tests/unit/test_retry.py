"""Retry policy: pure backoff arithmetic and validation (no sleeping)."""

from __future__ import annotations

import math

import pytest

import cairn
from cairn import _retry
from cairn._retry import RetryPolicy


def test_defaults_match_tensorlake_retries():
    policy = RetryPolicy()
    assert policy.max_retries == 0
    assert policy.initial_delay_s == 1.0
    assert policy.max_delay_s == 60.0
    assert policy.delay_multiplier == 2.0


@pytest.mark.parametrize(
    ("failed_attempts", "full"),
    [(1, 0.5), (2, 1.5), (3, 4.5), (4, 13.5), (5, 40.5)],
)
def test_delay_grows_exponentially(failed_attempts, full):
    policy = RetryPolicy(
        max_retries=10, initial_delay_s=0.5, max_delay_s=1000.0, delay_multiplier=3.0
    )
    # initial * multiplier ** (n - 1); draw=1 keeps all of it.
    assert policy.delay_s(failed_attempts, draw=1.0) == pytest.approx(full)


def test_delay_is_capped_at_max_delay():
    policy = RetryPolicy(
        max_retries=50, initial_delay_s=1.0, max_delay_s=10.0, delay_multiplier=2.0
    )
    assert policy.delay_s(4, draw=1.0) == pytest.approx(8.0)
    assert policy.delay_s(5, draw=1.0) == pytest.approx(10.0)
    assert policy.delay_s(40, draw=1.0) == pytest.approx(10.0)
    # The cap applies before jitter: never more than max_delay.
    assert policy.delay_s(40, draw=0.0) == pytest.approx(5.0)


def test_equal_jitter_keeps_half_and_draws_the_other_half():
    policy = RetryPolicy(initial_delay_s=2.0, max_delay_s=60.0, delay_multiplier=2.0)
    # Before the 3rd attempt the exponential delay is 2 * 2 = 4 seconds.
    assert policy.delay_s(2, draw=0.0) == pytest.approx(2.0)
    assert policy.delay_s(2, draw=1.0) == pytest.approx(4.0)
    assert policy.delay_s(2, draw=0.5) == pytest.approx(3.0)
    assert policy.delay_s(2, draw=0.25) == pytest.approx(2.5)


def test_delay_is_a_pure_function_of_its_inputs():
    policy = RetryPolicy(initial_delay_s=1.5, delay_multiplier=2.5)
    assert [policy.delay_s(3, draw=0.3) for _ in range(5)] == [
        policy.delay_s(3, draw=0.3)
    ] * 5


def test_random_draw_stays_within_the_jitter_band():
    policy = RetryPolicy(initial_delay_s=1.0, max_delay_s=60.0, delay_multiplier=2.0)
    for _ in range(200):
        delay = policy.delay_s(3)
        assert 2.0 <= delay <= 4.0


def test_zero_initial_delay_retries_at_once():
    policy = RetryPolicy(max_retries=3, initial_delay_s=0.0, max_delay_s=0.0)
    assert policy.delay_s(1, draw=1.0) == 0.0
    assert policy.delay_s(3, draw=0.7) == 0.0


@pytest.mark.parametrize(
    ("max_retries", "failed", "allowed"),
    [
        (0, 0, True),
        (0, 1, False),
        (3, 1, True),
        (3, 3, True),
        (3, 4, False),
        (3, 10, False),
    ],
)
def test_allows_another(max_retries, failed, allowed):
    # 1 + max_retries attempts in all.
    assert RetryPolicy(max_retries=max_retries).allows_another(failed) is allowed


def test_validate_builds_the_policy():
    policy = _retry.validate(4, 0.25, 30, 3)
    assert policy == RetryPolicy(
        max_retries=4, initial_delay_s=0.25, max_delay_s=30.0, delay_multiplier=3.0
    )
    assert isinstance(policy.max_delay_s, float)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_retries": "3"}, "max_retries"),
        ({"max_retries": 3.0}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
        ({"max_retries": None}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 10_000}, "max_retries"),
        ({"max_retries": 1, "initial_delay": -0.1}, "initial_delay"),
        ({"max_retries": 1, "initial_delay": "1"}, "initial_delay"),
        ({"max_retries": 1, "initial_delay": math.nan}, "initial_delay"),
        ({"max_retries": 1, "initial_delay": True}, "initial_delay"),
        ({"max_retries": 1, "max_delay": math.inf}, "max_delay"),
        ({"max_retries": 1, "max_delay": -5}, "max_delay"),
        ({"max_retries": 1, "initial_delay": 10, "max_delay": 5}, "max_delay"),
        ({"max_retries": 1, "delay_multiplier": 0.5}, "delay_multiplier"),
        ({"max_retries": 1, "delay_multiplier": -2}, "delay_multiplier"),
        ({"max_retries": 1, "delay_multiplier": math.nan}, "delay_multiplier"),
    ],
)
def test_validate_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(cairn.SDKUsageError, match=field):
        _retry.validate(**kwargs)


def test_retries_object_carries_a_validated_policy():
    retries = cairn.Retries(max_retries=2, initial_delay=0.5, max_delay=8.0)
    assert retries.max_retries == 2
    assert retries.policy.delay_s(3, draw=1.0) == pytest.approx(2.0)
    with pytest.raises(cairn.SDKUsageError, match="delay_multiplier"):
        cairn.Retries(max_retries=1, delay_multiplier=0)
