"""Schedules on real workers: each tick starts exactly one request, with several
workers and after downtime (missed ticks coalesce into one)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import cairn
from cairn import _calls, _schedules
from cairn.store import Store
from cairn.types import RequestStatus

from . import wait_apps
from .conftest import CAIRN, Workers, wait_finished


@pytest.fixture
def wait_workers(workers: Workers) -> Workers:
    workers.apps = Path(wait_apps.__file__)
    return workers


def _requests_of(store: Store, schedule_id: str) -> list[str]:
    return [
        r.id
        for r in store.list_requests(application="scheduled", limit=1000)
        if r.id.startswith(schedule_id)
    ]


def test_a_due_tick_starts_one_request_across_workers_and_after_downtime(
    wait_workers: Workers, crash_store: Store, store_url: str
):
    schedules = cairn.Schedules(store_url)
    # Every minute of the last ten, hourly: ten ticks missed below, and none due
    # while the test runs (a tick of every minute would start a second request
    # when the test runs across a minute's end).
    minute = time.gmtime().tm_min
    cron = ",".join(str((minute - back) % 60) for back in range(1, 11)) + " * * * *"
    made = schedules.add(wait_apps.scheduled, cron, "tick")
    assert made.next_at_ms > _calls.now_ms() + 40 * 60_000
    # Ten minutes of ticks were missed (no worker ran): due since then.
    crash_store.pause_schedule(made.id, False, _calls.now_ms() - 600_000)
    for _ in range(3):
        wait_workers.start()
    deadline = time.monotonic() + 30
    while not _requests_of(crash_store, made.id) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # every worker looked at least twice
    started = _requests_of(crash_store, made.id)
    assert len(started) == 1
    wait_finished(crash_store, started[0])
    record = crash_store.get_request(started[0])
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    assert record.output == b'"ran tick"'
    after = schedules.get(made.id)
    assert after.last_request_id == started[0]
    assert after.next_at_ms > _calls.now_ms()  # the missed ticks were coalesced
    assert wait_workers.effect_counts()["scheduled tick"] == 1

    # Paused, a due tick starts nothing; resumed, it goes on from its next tick.
    schedules.pause(made.id)
    crash_store.pause_schedule(made.id, True, _calls.now_ms() - 1000)
    time.sleep(1.5)
    assert len(_requests_of(crash_store, made.id)) == 1
    resumed = schedules.resume(made.id)
    assert not resumed.paused and resumed.next_at_ms > _calls.now_ms()


def test_a_tick_starts_once_however_many_times_it_is_started(
    crash_store: Store, store_url: str
):
    schedules = cairn.Schedules(store_url)
    made = schedules.add("scheduled", "0 9 * * MON-FRI", "x")
    record = crash_store.get_schedule(made.id)
    assert record is not None
    due = record.next_at_ms
    # Two workers that read the same due tick at different times: one starts it.
    first = _schedules.request_of_tick(record, due + 5)
    second = _schedules.request_of_tick(record, due + 60_000)
    assert crash_store.start_tick(first) is True
    assert crash_store.start_tick(second) is False
    assert crash_store.start_tick(first) is False
    assert [r.id for r in crash_store.list_requests(application="scheduled")] == [
        first.request.id
    ]
    moved = crash_store.get_schedule(made.id)
    assert moved is not None and moved.next_at_ms > due
    assert moved.last_request_id == first.request.id


def test_bad_schedules_are_refused_naming_the_problem(store_url: str):
    schedules = cairn.Schedules(store_url)
    with pytest.raises(cairn.SDKUsageError, match="bad cron expression"):
        schedules.add("scheduled", "61 * * * *")
    with pytest.raises(cairn.SDKUsageError, match="five fields"):
        schedules.add("scheduled", "every day")
    with pytest.raises(cairn.SerializationError, match="must be JSON"):
        schedules.add("scheduled", "* * * * *", {1, 2})
    with pytest.raises(cairn.ScheduleNotFound, match="no schedule with id 'nope'"):
        schedules.pause("nope")
    with pytest.raises(cairn.ScheduleNotFound):
        schedules.delete("nope")


def test_the_schedules_command(store_url: str):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CAIRN, "schedules", *args, "--store", store_url],
            capture_output=True,
            text=True,
            timeout=60,
        )

    added = cli("add", "scheduled", "--cron", "0 9 * * MON-FRI", "--input", '"cli"')
    assert added.returncode == 0, added.stderr
    schedule_id = added.stdout.split()[1]
    assert schedule_id.startswith("sch-")
    listed = cli("list")
    assert schedule_id in listed.stdout and '"cli"' in listed.stdout
    assert "paused" in cli("pause", schedule_id).stdout
    assert "next 20" in cli("resume", schedule_id).stdout
    assert cli("delete", schedule_id).returncode == 0
    assert cli("list").stdout.strip() == "no schedules"
    bad = cli("add", "scheduled", "--cron", "61 * * * *")
    assert bad.returncode == 2 and "bad cron expression" in bad.stderr
    missing = cli("pause", "nope")
    assert missing.returncode == 1 and "schedule_not_found" in missing.stderr
