"""Flow control across workers: a rate limit per function, a concurrency cap per
key, a priority per request, each enforced in the store's claim, so that several
``cairn worker`` processes share them; and bad declarations refused up front."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

import cairn
from cairn import errors
from cairn.store import open_store
from cairn.types import RequestStatus
from tests.crash.conftest import peak_overlap

CAIRN = str(Path(sys.executable).parent / "cairn")
CALLS, BURST = 10, 2  # per second

APP = f"""
from __future__ import annotations

import os
import time

from cairn import RateLimit, RequestContext, application, function

LOG = os.environ["FLOW_LOG"]


def note(line: str) -> None:
    with open(LOG, "a") as handle:
        handle.write(line + "\\n")


@function(rate_limit=RateLimit(calls={CALLS}, period_s=1, burst={BURST}))
def paced(i: int) -> int:
    note(f"paced {{time.time()}}")
    return i


@function(max_concurrency=2, concurrency_key="customer")
def per_customer(customer: str, i: int) -> int:
    note(f"start {{time.time()}} {{customer}}")
    time.sleep(0.25)
    note(f"end {{time.time()}} {{customer}}")
    return i


@application()
@function()
def rated(n: int) -> int:
    return sum(paced.map(list(range(n))))


@application()
@function()
def customers(n: int) -> int:
    calls = [per_customer.future(c, i).run() for c in "abc" for i in range(n)]
    return sum(call.result() for call in calls)


@application()
@function()
def tagged(tag: int) -> int:
    note(f"tag {{tag}}")
    time.sleep(0.05)
    return tag
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "flow_app.py"
    path.write_text(APP)
    return path


def start_workers(
    app: Path, store_url: str, log: Path, count: int, concurrency: int = 2
) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "FLOW_LOG": str(log), "CAIRN_CONCURRENCY": str(concurrency)}
    return [
        subprocess.Popen(
            [CAIRN, "worker", str(app), "--store", store_url, "--grace", "5"],
            env=env,
        )
        for _ in range(count)
    ]


def wait_serving(store_url: str, count: int) -> None:
    """Until ``count`` workers serve the app (limits only bind when work is shared)."""
    store = open_store(store_url)
    try:
        deadline = time.monotonic() + 30
        while len(store.serving_workers("per_customer", time.time() * 1000)) < count:
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.05)
    finally:
        store.close()


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        process.wait(30)


def submit(store_url: str, application: str, arg: object, priority: int = 0) -> str:
    """A request any serving worker may run, made without loading the app here."""
    from tests.contract.test_store import submission

    request, root, _ = submission(f"{application}-{arg}-{priority}")
    payload = json.dumps({"args": [arg], "kwargs": {}}).encode()
    request = dataclasses.replace(
        request, application=application, input=payload, priority=priority
    )
    root = dataclasses.replace(root, function=application)
    store = open_store(store_url)
    try:
        store.create_request(request, root, payload)
    finally:
        store.close()
    return request.id


def wait_all(store_url: str, ids: list[str], timeout_s: float = 60) -> None:
    store = open_store(store_url)
    try:
        deadline = time.monotonic() + timeout_s
        for request_id in ids:
            while True:
                record = store.get_request(request_id)
                assert record is not None
                if record.status.finished:
                    assert record.status is RequestStatus.SUCCEEDED, record
                    break
                assert time.monotonic() < deadline, f"{request_id} did not finish"
                time.sleep(0.05)
    finally:
        store.close()


def lines(log: Path, kind: str) -> list[list[str]]:
    return [
        line.split() for line in log.read_text().splitlines() if line.startswith(kind)
    ]


def test_a_rate_limit_holds_across_workers(store_url, app, tmp_path):
    log = tmp_path / "flow.log"
    n = 18
    workers = start_workers(app, store_url, log, 3)
    try:
        wait_serving(store_url, 3)
        ids = [
            submit(store_url, "rated", n // 2),
            submit(store_url, "rated", n // 2 + 1),
        ]
        wait_all(store_url, ids)
    finally:
        stop(workers)
    starts = sorted(float(parts[1]) for parts in lines(log, "paced"))
    assert len(starts) == n + 1  # no call ran twice, none was lost
    # A token bucket: a window of t seconds holds at most burst + rate * t starts
    # (one more for the time user code takes to note its start).
    for first in range(len(starts)):
        for last in range(first, len(starts)):
            window_s = starts[last] - starts[first]
            assert last - first + 1 <= BURST + CALLS * window_s + 1, (
                f"{last - first + 1} starts in {window_s:.3f}s"
            )
    # Waiting for the rate is not a failure: every call succeeded on its first attempt.
    store = open_store(store_url)
    try:
        for request_id in ids:
            assert {c.attempts for c in store.list_calls(request_id)} <= {0, 1}
    finally:
        store.close()


def test_a_concurrency_cap_per_key_holds_across_workers(store_url, app, tmp_path):
    log = tmp_path / "flow.log"
    workers = start_workers(app, store_url, log, 3)
    try:
        wait_serving(store_url, 3)
        wait_all(store_url, [submit(store_url, "customers", 4)])
    finally:
        stop(workers)
    by_key: dict[str, list[str]] = defaultdict(list)
    for parts in lines(log, "start") + lines(log, "end"):
        by_key[parts[2]].append(" ".join(parts[:2]))
    assert sorted(by_key) == ["a", "b", "c"]
    peaks = {key: peak_overlap(events) for key, events in by_key.items()}
    assert all(peak <= 2 for peak in peaks.values()), peaks
    # Calls of different keys ran at once: the cap is per key, not the function's.
    everything = [event for events in by_key.values() for event in events]
    assert peak_overlap(everything) > 2


def test_requests_of_higher_priority_are_claimed_first(store_url, app, tmp_path):
    log = tmp_path / "flow.log"
    priorities = [0, 5, -1, 10, 3]
    for priority in priorities:
        submit(store_url, "tagged", priority, priority)
    workers = start_workers(app, store_url, log, 1, concurrency=1)
    try:
        ids = [submit(store_url, "tagged", 99, 99)]  # after the others
        wait_all(store_url, ids)
        store = open_store(store_url)
        try:
            pending = store.list_requests(status=RequestStatus.PENDING)
            deadline = time.monotonic() + 30
            while pending or store.list_requests(status=RequestStatus.RUNNING):
                assert time.monotonic() < deadline
                time.sleep(0.05)
                pending = store.list_requests(status=RequestStatus.PENDING)
        finally:
            store.close()
    finally:
        stop(workers)
    order = [int(parts[1]) for parts in lines(log, "tag")]
    assert sorted(order, reverse=True) == [99, 10, 5, 3, 0, -1]
    # The first may have started before the others were queued; the rest go by
    # priority.
    rest = [tag for tag in order if tag != order[0]]
    assert rest == sorted(rest, reverse=True), order


def test_bad_flow_control_input_is_refused_with_a_message_naming_it(tmp_path):
    with pytest.raises(errors.SDKUsageError, match="calls must be an int >= 1"):
        cairn.RateLimit(calls=0)
    with pytest.raises(errors.SDKUsageError, match="period_s"):
        cairn.RateLimit(calls=5, period_s=-1)
    with pytest.raises(errors.SDKUsageError, match="rate_limit '0/min'"):

        @cairn.function(rate_limit="0/min")
        def zero(x: int) -> int:
            return x

    with pytest.raises(errors.SDKUsageError, match="rate_limit must be"):

        @cairn.function(rate_limit="fast")
        def fast(x: int) -> int:
            return x

    with pytest.raises(
        errors.SDKUsageError, match="concurrency_key 'customer' is not a parameter"
    ):

        @cairn.function(max_concurrency=2, concurrency_key="customer")
        def unkeyed(user: str) -> str:
            return user

    with pytest.raises(errors.SDKUsageError, match="needs max_concurrency"):

        @cairn.function(concurrency_key="user")
        def uncapped(user: str) -> str:
            return user

    paced = cairn.function(rate_limit="30/min")(lambda x: x)
    assert paced._spec.rate_limit == cairn.RateLimit(calls=30, period_s=60)
    with pytest.raises(errors.SDKUsageError, match="cairn_priority must be an integer"):
        cairn.run_local_application(
            _an_app(), 1, cairn_store=f"sqlite:///{tmp_path}/x.db", cairn_priority="hi"
        )
    store = f"sqlite:///{tmp_path}/cli.db"
    small = tmp_path / "small_app.py"
    small.write_text(SMALL_APP)
    refused = subprocess.run(
        [
            CAIRN,
            "run",
            f"{small}:small",
            "--input",
            "[1]",
            "--priority",
            "high",
            "--store",
            store,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "--priority" in refused.stderr


SMALL_APP = """
from cairn import application, function


@application()
@function()
def small(x: int) -> int:
    return x
"""


def _an_app() -> cairn.Function:  # type: ignore[type-arg]
    return flow_app


@cairn.application()
@cairn.function()
def flow_app(x: int) -> int:
    return x


def test_priority_is_recorded_from_the_api_the_cli_and_local_runs(tmp_path):
    url = f"sqlite:///{tmp_path}/p.db"
    request = cairn.run_local_application(
        flow_app, 3, cairn_store=url, cairn_priority=7
    )
    small = tmp_path / "small_app.py"
    small.write_text(SMALL_APP)
    ran = subprocess.run(
        [
            CAIRN,
            "run",
            f"{small}:small",
            "--input",
            "[2]",
            "--priority",
            "-4",
            "--store",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    store = open_store(url)
    try:
        rows = store._conn.execute(  # type: ignore[attr-defined]
            "SELECT r.id, r.priority, c.priority FROM requests r JOIN calls c "
            "ON c.id = r.id ORDER BY r.created_at_ms"
        ).fetchall()
    finally:
        store.close()
    assert rows[0] == (request.id, 7, 7)
    assert rows[1][1:] == (-4, -4)
