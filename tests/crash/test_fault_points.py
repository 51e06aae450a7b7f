"""SIGKILL a real worker at each named fault point, restart it, check nothing is lost.

"Ran exactly once" is counted by side effects user code writes to a file, not by
the engine's bookkeeping.
"""

from __future__ import annotations

import random
import time

import pytest

from cairn import _request
from cairn.types import RequestStatus

from . import apps
from .conftest import assert_nothing_left_behind, wait_finished

N = 5
STEPS = {f"step {i}" for i in range(N)}
ITEMS = {f"item {i}" for i in range(N)}


def submit(store_url: str, n: int = N) -> str:
    return _request.submit(apps.crash_pipeline, (n,), {}, store_url=store_url)


def run_with_fault(workers, crash_store, store_url, fault: str) -> str:
    request_id = submit(store_url)
    doomed = workers.start(faults=fault)
    assert doomed.wait(timeout=60) == -9, f"the worker did not die at {fault}"
    record = crash_store.get_request(request_id)
    assert record is not None and not record.status.finished
    workers.start()
    wait_finished(crash_store, request_id)
    return request_id


def assert_finished_correctly(crash_store, request_id: str) -> None:
    record = crash_store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    assert record.output == str(apps.expected_output(N)).encode()
    assert_nothing_left_behind(crash_store, request_id)


@pytest.mark.parametrize(
    ("fault", "ran_twice"),
    [
        # The 4th checkpoint of the executor running the application is step 3's.
        ("after_commit@4", set()),
        ("before_commit@4", {"step 3"}),
        ("mid_attempt@4", set()),
        ("dispatched_claimed@1", set()),
    ],
)
def test_kill_in_the_sequential_part(workers, crash_store, store_url, fault, ran_twice):
    request_id = run_with_fault(workers, crash_store, store_url, fault)
    assert_finished_correctly(crash_store, request_id)
    counts = workers.effect_counts()
    assert counts.pop(f"flaky {N}") == 2  # its first attempt fails by design
    assert {label for label, n in counts.items() if n > 1} == ran_twice
    assert set(counts) == STEPS | ITEMS
    assert all(n <= 2 for n in counts.values())


def test_kill_in_the_middle_of_a_map_fan_out(workers, crash_store, store_url):
    request_id = run_with_fault(workers, crash_store, store_url, "map_fanout@1")
    assert_finished_correctly(crash_store, request_id)
    counts = workers.effect_counts()
    assert all(counts[s] == 1 for s in STEPS)
    assert all(1 <= counts[i] <= 2 for i in ITEMS)
    # Only items in flight at the kill (at most one per executor) ran twice.
    assert sum(counts[i] == 2 for i in ITEMS) <= 2


def test_kill_during_a_retry_backoff(workers, crash_store, store_url):
    request_id = run_with_fault(workers, crash_store, store_url, "retry_backoff@1")
    assert_finished_correctly(crash_store, request_id)
    counts = workers.effect_counts()
    assert counts[f"flaky {N}"] == 2  # the failed attempt and the one after the restart
    assert all(counts[label] == 1 for label in STEPS | ITEMS)
    (flaky,) = [
        c for c in crash_store.list_calls(request_id) if c.function == "crash_flaky"
    ]
    assert flaky.attempts == 2


def test_kill_during_a_replay(workers, crash_store, store_url):
    request_id = submit(store_url)
    first = workers.start()
    wait_finished(crash_store, request_id)
    first.terminate()
    assert first.wait(timeout=30) == 0
    before = workers.effect_counts()
    crash_store.start_replay(
        request_id, from_call=None, strict=False, now_ms=time.time() * 1000
    )
    doomed = workers.start(faults="replay_serve@2")
    assert doomed.wait(timeout=60) == -9
    workers.start()
    wait_finished(crash_store, request_id)
    assert_finished_correctly(crash_store, request_id)
    # Everything was served from checkpoints, twice over: nothing ran again.
    assert workers.effect_counts() == before


def test_sigkill_at_random_instants_until_done(workers, crash_store, store_url):
    rng = random.Random(20261122)
    size = 20
    request_id = submit(store_url, size)
    kills = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        worker = workers.start(CAIRN_TEST_STEP_S="0.05")
        # Killed at a random instant of its work, not of its start: on a slow
        # machine a worker's imports alone can take most of a fixed window.
        workers.wait_serving(worker, timeout_s=30)
        try:
            worker.wait(timeout=rng.uniform(0.4, 0.9))
        except Exception:
            worker.kill()
            worker.wait()
            kills += 1
        record = crash_store.get_request(request_id)
        if record is not None and record.status.finished:
            break
    assert kills >= 3, "the run finished before the workers were killed enough"
    record = crash_store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    assert record.output == str(apps.expected_output(size)).encode()
    assert_nothing_left_behind(crash_store, request_id)
    counts = workers.effect_counts()
    assert set(counts) >= {f"step {i}" for i in range(size)} | {
        f"item {i}" for i in range(size)
    }
    # A committed call never runs again; each kill can repeat what was in flight.
    repeats = sum(n - 1 for label, n in counts.items() if not label.startswith("flaky"))
    assert repeats <= 2 * kills


def test_a_worker_drains_on_sigterm(workers, crash_store, store_url):
    request_id = submit(store_url)
    worker = workers.start(CAIRN_TEST_STEP_S="0.2")
    while not workers.effect_counts():
        time.sleep(0.02)
    worker.terminate()
    # The running application call is let finish (within --grace) before the exit.
    assert worker.wait(timeout=30) == 0
    assert_finished_correctly(crash_store, request_id)
    counts = workers.effect_counts()
    assert counts.pop(f"flaky {N}") == 2  # its first attempt fails by design
    assert all(n == 1 for n in counts.values())
