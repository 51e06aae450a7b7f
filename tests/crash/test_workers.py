"""Workers under load and faults: no deadlock, bounded resources, cancel, many requests."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cairn import _request
from cairn.store import open_store
from cairn.types import RequestStatus

from . import apps
from .conftest import CAIRN, assert_nothing_left_behind, peak_overlap, wait_finished


def test_deep_recursive_fan_out_completes_with_two_executors(
    workers, crash_store, store_url
):
    # Six levels (15,625 leaves) on SQLite; five (3,125) on PostgreSQL, whose
    # commits cost several times more here: the depth is what is under test.
    depth = 6 if store_url.startswith("sqlite") else 5
    request_id = _request.submit(apps.crash_forest, (depth,), {}, store_url=store_url)
    workers.start()
    wait_finished(crash_store, request_id, timeout_s=110)
    record = crash_store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    assert record.output == str(5**depth).encode()
    assert_nothing_left_behind(crash_store, request_id)


def test_ten_thousand_map_items_hold_a_few_processes_and_threads(
    workers, crash_store, store_url
):
    request_id = _request.submit(apps.crash_wide, (10_000,), {}, store_url=store_url)
    workers.start()
    wait_finished(crash_store, request_id, timeout_s=300)
    record = crash_store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    processes, threads = (int(x) for x in record.output.decode().strip("[]").split(","))
    assert processes <= 2 * 4 + 8  # the pool's cap, however many items
    assert threads <= 4


def test_cancel_from_the_cli_stops_a_request_running_on_a_worker(
    workers, crash_store, store_url
):
    request_id = _request.submit(apps.crash_long, (100,), {}, store_url=store_url)
    workers.start()
    while len(workers.effect_counts()) < 3:
        time.sleep(0.02)
    subprocess.run(
        [CAIRN, "requests", "cancel", request_id, "--store", store_url],
        check=True,
        capture_output=True,
    )
    wait_finished(crash_store, request_id)
    done_at_cancel = len(workers.effect_counts())
    time.sleep(1.0)
    assert len(workers.effect_counts()) <= done_at_cancel + 1
    record = crash_store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.CANCELLED
    assert_nothing_left_behind(crash_store, request_id)


def test_200_concurrent_requests_while_workers_are_killed(
    workers, crash_store, store_url
):
    ids = [
        _request.submit(apps.crash_ten, (seed * 100,), {}, store_url=store_url)
        for seed in range(200)
    ]
    kills = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        worker = workers.start()
        try:
            worker.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            kills += 1
        if all(crash_store.get_request(i).status.finished for i in ids):  # type: ignore[union-attr]
            break
    assert kills >= 2
    for seed, request_id in enumerate(ids):
        record = crash_store.get_request(request_id)
        assert record is not None and record.status is RequestStatus.SUCCEEDED, (
            request_id
        )
        assert record.output == str(sum(seed * 100 + i for i in range(10))).encode()
        assert_nothing_left_behind(crash_store, request_id)
    # Each step ran once, or twice when a kill caught it in flight.
    counts = workers.effect_counts()
    assert len(counts) == 200 * 10
    assert sum(n - 1 for n in counts.values()) <= kills * 2


def test_a_worker_refuses_a_store_from_a_newer_cairn(tmp_path: Path):
    path = tmp_path / "newer.db"
    url = f"sqlite:///{path}"
    subprocess.run(
        [CAIRN, "db", "migrate", "--store", url], check=True, capture_output=True
    )
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE cairn_meta SET value = '99' WHERE key = 'schema_version'")
    result = subprocess.run(
        [CAIRN, "worker", str(Path(apps.__file__)), "--store", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "schema version 99, newer than" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.sqlite_only
def test_a_store_that_goes_away_is_retried_and_nothing_is_marked_done(
    workers, crash_store, store_url, tmp_path
):
    request_id = _request.submit(apps.crash_long, (30,), {}, store_url=store_url)
    # Writers of this worker give up after 0.2 s, so a 3 s lock is a real outage.
    workers.store_url = f"{store_url}?timeout=0.2"
    worker = workers.start()
    while len(workers.effect_counts()) < 3:
        time.sleep(0.02)
    path = Path(store_url.removeprefix("sqlite:///"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(3)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    with holder.stdout:
        assert holder.stdout.readline().strip() == b"locked"
    holder.wait()
    assert worker.poll() is None, "the worker must survive the outage"
    wait_finished(crash_store, request_id, timeout_s=120)
    assert "the store is unusable; retrying in" in workers.logs()
    record = crash_store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    assert record.output == str(sum(range(30))).encode()
    counts = workers.effect_counts()
    assert set(counts) == {f"slow {i}" for i in range(30)}
    # The call whose commit failed in the outage ran again; none other did.
    assert sum(n - 1 for n in counts.values()) <= 2
    assert_nothing_left_behind(crash_store, request_id)
    root = next(c for c in crash_store.list_calls(request_id) if c.kind == "app")
    assert root.attempts == 1, "a store outage must not use up the call's attempts"


@pytest.mark.sqlite_only
def test_a_deleted_store_file_is_noticed_and_the_worker_starts_over(
    workers, crash_store, store_url
):
    path = Path(store_url.removeprefix("sqlite:///"))
    _request.submit(apps.crash_long, (200,), {}, store_url=store_url)
    worker = workers.start()
    while len(workers.effect_counts()) < 2:
        time.sleep(0.02)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    # A new request in the new store at the same path: the worker must run it there.
    fresh = _request.submit(apps.crash_ten, (7,), {}, store_url=store_url)
    store = open_store(store_url)
    try:
        wait_finished(store, fresh, timeout_s=60)
        record = store.get_request(fresh)
        assert record is not None and record.status is RequestStatus.SUCCEEDED
    finally:
        store.close()
    assert worker.poll() is None
    deadline = time.monotonic() + 10  # noticed at the next heartbeat (every 2 s)
    while "restarting on it" not in workers.logs():
        assert time.monotonic() < deadline, workers.logs()
        time.sleep(0.1)


def test_a_second_signal_stops_a_draining_worker_at_once(
    workers, crash_store, store_url
):
    request_id = _request.submit(apps.crash_long, (100,), {}, store_url=store_url)
    worker = workers.start()
    while len(workers.effect_counts()) < 3:
        time.sleep(0.02)
    worker.terminate()  # drain: the application call (10 s of work) may finish...
    time.sleep(0.3)
    assert worker.poll() is None
    stopped_at = time.monotonic()
    worker.terminate()  # ...but not after a second signal
    assert worker.wait(timeout=10) == 1
    assert time.monotonic() - stopped_at < 3
    record = crash_store.get_request(request_id)
    assert record is not None and not record.status.finished
    # Its calls were handed back: the next worker finishes the request.
    workers.start()
    wait_finished(crash_store, request_id, timeout_s=60)
    assert_nothing_left_behind(crash_store, request_id)
    assert crash_store.get_request(request_id).status is RequestStatus.SUCCEEDED  # type: ignore[union-attr]


def test_several_workers_share_a_map_and_respect_a_global_cap(
    workers, crash_store, store_url
):
    pids = {workers.start().pid for _ in range(3)}
    spread = _request.submit(apps.crash_spread, (1000,), {}, store_url=store_url)
    wait_finished(crash_store, spread, timeout_s=240)
    record = crash_store.get_request(spread)
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    assert record.output == str(sum(range(1000))).encode()
    by_worker = workers.effect_counts()
    assert set(by_worker) == {
        f"worker {pid}" for pid in pids
    }  # every worker took items
    assert sum(by_worker.values()) >= 1000

    workers.effects.write_text("")
    capped = _request.submit(apps.crash_capped_app, (8,), {}, store_url=store_url)
    wait_finished(crash_store, capped, timeout_s=120)
    peak = peak_overlap(workers.effects.read_text().splitlines())
    assert peak == 2  # six executors in three workers, one cap across them all
