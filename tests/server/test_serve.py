"""``cairn serve`` as a process: start-up, shutdown, its embedded worker."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.server.support import Server, invoke, launch, sse_events, wait_for


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_startup_message(server: Server) -> None:
    logs = server.logs()
    assert "application(s) (srv_add, srv_boom, srv_greet," in logs
    assert f"on {server.url} (namespace 'default', store sqlite:///" in logs
    assert "auth is OFF" in logs and "loopback only" in logs


def test_sigterm_stops_the_server_and_its_worker(
    start_server: Callable[..., Server],
) -> None:
    server = start_server()
    workers = _children(server.process.pid)
    assert len(workers) == 1
    executors = _children(workers[0])
    assert len(executors) >= 2
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    wait_for(lambda: not any(_alive(p) for p in [*workers, *executors]), 10)
    assert "Traceback" not in server.logs()


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_embedded_worker_yields_the_cpu_to_the_api(
    start_server: Callable[..., Server],
) -> None:
    server = start_server()
    (worker,) = _children(server.process.pid)
    executors = _children(worker)
    assert executors
    assert {_nice(pid) for pid in [server.process.pid, worker, *executors]} == {0}
    lower = start_server(extra_args=("--worker-nice", "10"))
    (worker,) = _children(lower.process.pid)
    assert _nice(lower.process.pid) == 0
    assert {_nice(pid) for pid in [worker, *_children(worker)]} == {10}


def test_a_running_request_survives_a_restart(tmp_path: Path) -> None:
    first = launch(tmp_path / "one")
    try:
        with first.client() as http:
            request_id = invoke(http, "srv_slow", "restart")
            wait_for(
                lambda: (
                    http.get(f"/applications/srv_slow/requests/{request_id}").json()[
                        "status"
                    ]
                    == "running"
                )
            )
    finally:
        first.stop()
    store = f"sqlite:///{tmp_path / 'one' / 's.db'}"
    second = launch(tmp_path / "one", store_url=store)
    try:
        (tmp_path / "one" / "restart.go").touch()
        with second.client() as http:
            path = f"/applications/srv_slow/requests/{request_id}"
            events = sse_events(http, f"{path}/progress", {"Last-Event-ID": "0"})
            assert events[-1][1]["RequestFinished"]["outcome"] == "success"
            assert http.get(f"{path}/output").json() == "released restart"
    finally:
        second.stop()


def test_the_server_stops_when_its_worker_dies(
    start_server: Callable[..., Server],
) -> None:
    server = start_server()
    (worker,) = _children(server.process.pid)
    os.kill(worker, signal.SIGKILL)
    assert server.process.wait(timeout=30) == 1
    assert "embedded worker exited" in server.logs()


def test_no_worker_serves_the_api_only(start_server: Callable[..., Server]) -> None:
    server = start_server(extra_args=("--no-worker",))
    assert _children(server.process.pid) == []
    with server.client() as http:
        request_id = invoke(http, "srv_greet", "later")
        time.sleep(0.3)
        metadata = http.get(f"/applications/srv_greet/requests/{request_id}").json()
        assert metadata["status"] == "pending"  # nothing runs it here
    assert httpx.get(f"{server.url}/healthz").status_code == 200
