"""Cron arithmetic of schedules (UTC), with fixed times: the next tick, and the one
tick a schedule that missed several starts."""

from __future__ import annotations

import datetime

import pytest

from cairn import _schedules, errors


def _ms(*parts: int) -> float:
    return datetime.datetime(*parts, tzinfo=datetime.UTC).timestamp() * 1000.0


def test_the_next_tick_is_strictly_after():
    # Thursday 2026-12-03 12:00 UTC: the next weekday 09:00 is Friday's.
    assert _schedules.next_tick_ms("0 9 * * MON-FRI", _ms(2026, 12, 3, 12)) == _ms(
        2026, 12, 4, 9
    )
    # On a tick exactly: the one after it.
    assert _schedules.next_tick_ms("0 9 * * *", _ms(2026, 12, 4, 9)) == _ms(
        2026, 12, 5, 9
    )
    # Friday after 09:00: Monday.
    assert _schedules.next_tick_ms("0 9 * * MON-FRI", _ms(2026, 12, 4, 10)) == _ms(
        2026, 12, 7, 9
    )


def test_missed_ticks_coalesce_into_the_latest():
    due = _ms(2026, 12, 3, 10, 0)
    now = _ms(2026, 12, 3, 10, 7, 30)
    assert _schedules.last_tick_ms("* * * * *", due, now) == _ms(2026, 12, 3, 10, 7)
    # Not late: the tick that was due.
    assert _schedules.last_tick_ms("* * * * *", due, due + 500) == due


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("61 * * * *", "bad cron expression"),
        ("* * * *", "five fields"),
        ("* * * * * *", "five fields"),
        ("0 9 * * FUNDAY", "bad cron expression"),
        (None, "five fields"),
    ],
)
def test_bad_cron_expressions_are_refused(cron, problem):
    with pytest.raises(errors.SDKUsageError, match=problem):
        _schedules.check_cron(cron)
