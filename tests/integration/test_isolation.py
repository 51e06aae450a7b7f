"""Which process runs what: local runs run their own requests alone, workers run
the functions they have loaded, and signals leave a request resumable."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from cairn.store import Store, open_store
from cairn.types import RequestStatus

CAIRN = str(Path(sys.executable).parent / "cairn")

# Two apps in two files: a process that loaded one has not loaded the other.
APP = """
from __future__ import annotations

import os
import time

from cairn import RequestContext, application, function

EFFECTS = os.environ.get("ISOLATION_EFFECTS", os.devnull)


@function()
def {name}_step(i: int) -> int:
    with open(EFFECTS, "a") as handle:
        handle.write(f"{{RequestContext.get().request_id}} {name}_step {{i}}\\n")
    time.sleep(float(os.environ.get("ISOLATION_STEP_S", "0.02")))
    return i * {factor}


@function()
def {name}_item(i: int) -> int:
    if "ISOLATION_ITEMS" in os.environ:  # which worker ran it
        with open(os.environ["ISOLATION_ITEMS"], "a") as handle:
            handle.write(os.environ["WORKER_TAG"] + "\\n")
    return i + {factor}


@application()
@function()
def {name}(n: int) -> int:
    total = sum({name}_step(i) for i in range(n))
    return total + sum({name}_item.map(list(range(n))))
"""


def expected(factor: int, n: int) -> int:
    return sum(i * factor for i in range(n)) + sum(i + factor for i in range(n))


def write_apps(folder: Path) -> dict[str, Path]:
    apps = {}
    for name, factor in (("forecast", 2), ("digest", 3)):
        path = folder / f"{name}_app.py"
        path.write_text(APP.format(name=name, factor=factor))
        apps[name] = path
    return apps


def printed_output(out: str) -> object:
    """The output ``cairn run`` printed (its ``output  JSON`` line)."""
    (line,) = [line for line in out.splitlines() if line.startswith("output ")]
    return json.loads(line.split(None, 1)[1])


def cairn_run(
    app: Path, n: int, store_url: str, env: dict[str, str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CAIRN, "run", str(app), "--input", json.dumps(n), "--store", store_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("processes", [2, 5, 20])
def test_concurrent_local_runs_run_their_own_requests(store_url, tmp_path, processes):
    if store_url.startswith("postgresql") and processes > 10:
        # Each process holds about five connections: twenty would take the test
        # server's 100 from the rest of the suite (CI saw 'too many clients').
        processes = 10
    apps = write_apps(tmp_path)
    effects = tmp_path / "effects.log"
    env = {
        **os.environ,
        "ISOLATION_EFFECTS": str(effects),
        # 20 processes each with its executor stay within PostgreSQL's connections.
        "CAIRN_CONCURRENCY": "1" if processes > 5 else "2",
    }
    started = []
    try:
        for i in range(processes):
            name = "forecast" if i % 2 == 0 else "digest"  # same app and other apps
            started.append((name, cairn_run(apps[name], 6, store_url, env)))
        for name, process in started:
            out, err = process.communicate(timeout=240)
            assert process.returncode == 0, err
            factor = 2 if name == "forecast" else 3
            assert printed_output(out) == expected(factor, 6), out
    finally:
        # A failed assert leaves later processes unread: kill the running ones and
        # close every pipe, or their ResourceWarnings fail whichever test runs
        # when the garbage collector finds them.
        for _, process in started:
            if process.poll() is None:
                process.kill()
            process.wait()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()
    store = open_store(store_url)
    try:
        requests = store.list_requests(limit=100)
        assert len(requests) == processes
        assert all(r.status is RequestStatus.SUCCEEDED for r in requests)
    finally:
        store.close()
    # Nothing failed, so every step ran exactly once: no process ran another's
    # call, and no process's exit cut another's call short.
    counts = Counter(effects.read_text().splitlines())
    assert len(counts) == processes * 6
    assert set(counts.values()) == {1}, [k for k, v in counts.items() if v > 1]


@pytest.mark.parametrize(
    ("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)]
)
def test_a_signalled_local_run_leaves_its_request_resumable(
    store_url, tmp_path, signum, exit_code
):
    apps = write_apps(tmp_path)
    effects = tmp_path / "effects.log"
    env = {**os.environ, "ISOLATION_EFFECTS": str(effects)}
    slow = {**env, "ISOLATION_STEP_S": "0.3"}
    stopped = cairn_run(apps["forecast"], 8, store_url, slow)
    try:
        deadline = time.monotonic() + 60
        while len(lines(effects)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped.send_signal(signum)
        _, err = stopped.communicate(timeout=60)
    finally:
        if stopped.poll() is None:
            stopped.kill()
            stopped.communicate()
    assert stopped.returncode == exit_code, err
    (request_id,) = {line.split()[0] for line in lines(effects)}
    assert f"cairn requests replay {request_id}" in err
    # Another local run, of another application, leaves it alone.
    other = cairn_run(apps["digest"], 2, store_url, env)
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0 and printed_output(out) == expected(3, 2), err
    store = open_store(store_url)
    try:
        record = store.get_request(request_id)
        assert record is not None and not record.status.finished
    finally:
        store.close()
    ran_before = Counter(lines(effects))
    resumed = subprocess.run(
        [CAIRN, "requests", "replay", request_id, "--store", store_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert printed_output(resumed.stdout) == expected(2, 8)
    ran = Counter(lines(effects)) - ran_before
    steps_done = {line for line in ran_before if "forecast_step" in line}
    # Steps whose checkpoints committed before the signal did not run again (the
    # one in flight may have).
    assert len(set(ran) & steps_done) <= 1


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_worker_serves_only_its_functions_and_a_request_says_what_it_waits_for(
    store_url, tmp_path
):
    from cairn import _request_ops

    apps = write_apps(tmp_path)
    items = tmp_path / "items.log"
    env = {
        **os.environ,
        "ISOLATION_EFFECTS": str(tmp_path / "effects.log"),
        "ISOLATION_ITEMS": str(items),
    }
    functions = ["--functions", "forecast_item,nowhere"]
    refused = subprocess.run(
        [CAIRN, "worker", str(apps["forecast"]), "--store", store_url, *functions],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "'nowhere'" in refused.stderr
    request_id = submit_nobodys(store_url, "forecast", 3)
    workers = [worker(apps["forecast"], store_url, env, "items", "forecast_item")]
    try:
        store = open_store(store_url)
        try:
            deadline = time.monotonic() + 30
            record = store.get_request(request_id)
            while store.serving_workers("forecast_item", now_ms()) == {}:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert record is not None
            waiting = _request_ops.waiting_for(store, record)
            assert waiting == "waiting for a worker that serves `forecast`"
            shown = subprocess.run(
                [CAIRN, "requests", "show", request_id, "--store", store_url],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert "waiting for a worker that serves `forecast`" in shown.stdout
            workers.append(
                worker(
                    apps["forecast"], store_url, env, "main", "forecast,forecast_step"
                )
            )
            while not store.get_request(request_id).status.finished:  # type: ignore[union-attr]
                assert time.monotonic() < deadline + 30
                time.sleep(0.05)
            record = store.get_request(request_id)
            assert record is not None and record.status is RequestStatus.SUCCEEDED
            assert record.output == str(expected(2, 3)).encode()
        finally:
            store.close()
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    # The map's items ran on the worker that serves them, and only there.
    assert Counter(lines(items)) == {"items": 3}


def worker(
    app: Path, store_url: str, env: dict[str, str], tag: str, functions: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CAIRN, "worker", str(app), "--store", store_url, "--functions", functions],
        env={**env, "WORKER_TAG": tag},
    )


def now_ms() -> float:
    return time.time() * 1000


def submit_nobodys(
    store_url: str, application: str, n: int, request_id: str = "request"
) -> str:
    """A request any serving worker may run (as the server submits them), made
    without loading the application's code in this process."""
    from tests.contract.test_store import submission

    request, root, _ = submission(f"{application}-{request_id}")
    payload = json.dumps({"args": [n], "kwargs": {}}).encode()
    request = dataclasses.replace(request, application=application, input=payload)
    root = dataclasses.replace(root, function=application)
    store = open_store(store_url)
    try:
        store.create_request(request, root, payload)
    finally:
        store.close()
    return request.id


DEPLOYED = """
import time

from cairn import application, function

VERSION = {version}


@function()
def deploy_step(i: int) -> int:
    time.sleep(0.05)
    return i


@application()
@function()
def deploy_app(n: int) -> int:
    return sum(deploy_step(i) for i in range(n))
"""


@pytest.mark.postgres_only
def test_a_rolling_deploy_fails_nothing_and_shows_what_ran_where(store_url, tmp_path):

    folders = [tmp_path / "v1", tmp_path / "v2"]
    for version, folder in enumerate(folders, 1):
        folder.mkdir()
        (folder / "deploy_app.py").write_text(DEPLOYED.format(version=version))
    versions = [
        hashlib.sha256((f / "deploy_app.py").read_bytes()).hexdigest()[:12]
        for f in folders
    ]
    old = deploy_worker(folders[0], store_url)
    new = None
    try:
        first = [submit_nobodys(store_url, "deploy_app", 6, f"a{i}") for i in range(20)]
        store = open_store(store_url)
        try:
            wait_until(lambda: ran_by(store, first, versions[0]))
            new = deploy_worker(folders[1], store_url)
            wait_until(lambda: ran_by(store, first, versions[1]))
            old.send_signal(signal.SIGTERM)  # drains: running calls finish first
            assert old.wait(60) == 0
            later = [
                submit_nobodys(store_url, "deploy_app", 6, f"b{i}") for i in range(10)
            ]
            wait_until(lambda: all(finished(store, r) for r in first + later), 120)
            for request_id in first + later:
                record = store.get_request(request_id)
                assert record is not None, request_id
                assert record.status is RequestStatus.SUCCEEDED, record
                assert record.output == b"15"
            # What ran where: both versions during the deploy, the new one after.
            during = code_versions(store_url, first)
            assert set(during) == set(versions), during
            assert set(code_versions(store_url, later)) == {versions[1]}
            assert store.serving_workers("deploy_app", now_ms()) == {
                worker_id_of(store, versions[1]): versions[1]
            }
        finally:
            store.close()
    finally:
        for process in (old, new):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
    shown = subprocess.run(
        [CAIRN, "requests", "show", first[0], "--store", store_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "code " in shown.stdout and "attempt" in shown.stdout, shown.stdout


def deploy_worker(folder: Path, store_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CAIRN, "worker", "deploy_app", "--store", store_url, "--concurrency", "2"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(folder)},
    )


def code_versions(store_url: str, request_ids: list[str]) -> Counter[str]:
    from cairn import get_request

    return Counter(
        attempt.code_version or "?"
        for request_id in request_ids
        for call in get_request(request_id, store=store_url).calls()
        for attempt in call.attempts
    )


def ran_by(store: Store, request_ids: list[str], version: str) -> bool:
    return any(
        attempt.code_version == version
        for request_id in request_ids
        for attempt in store.list_attempts(request_id)
    )


def finished(store: Store, request_id: str) -> bool:
    record = store.get_request(request_id)
    return record is not None and record.status.finished


def worker_id_of(store: Store, version: str) -> str:
    (worker_id,) = [
        w
        for w, v in store.serving_workers("deploy_app", now_ms()).items()
        if v == version
    ]
    return worker_id


def wait_until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.sqlite_only
def test_a_local_run_taken_for_dead_while_it_runs_takes_its_request_back(
    store_url, run, tmp_path
):
    from cairn import Retries, application, function

    path = store_url.removeprefix("sqlite:///")
    marker = tmp_path / "first-attempt-done"

    @application()
    @function(retries=Retries(max_retries=1, initial_delay=0.05))
    def adopted_app(n: int) -> int:
        if not marker.exists():
            marker.touch()
            # As another engine does when this one's heartbeat is late: the
            # request becomes nobody's, and its retry waits to be claimed.
            with sqlite3.connect(path, timeout=30) as conn:
                conn.execute("UPDATE requests SET owner = NULL")
            raise ConnectionError("first attempt fails")
        return n

    assert run(adopted_app, 3).output() == 3
