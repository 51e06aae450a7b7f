"""``/metrics`` of ``cairn serve`` and ``cairn worker --metrics-port``: figures
made in every executor process, summed (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_port
from tests.server.support import invoke, launch, wait_for

APP = Path(__file__).with_name("metered_app.py")
CAIRN = str(Path(sys.executable).parent / "cairn")


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(found, metric: str, /, **labels: str) -> float:
    return found.get((metric, frozenset(labels.items())), 0.0)


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def _executors_of(server_pid: int) -> int:
    """Executor processes: children of the embedded worker (the server's child;
    the server's other children, if any, are not workers)."""
    return sum(len(_children(worker)) for worker in _children(server_pid))


def finished(http: httpx.Client, request_id: str) -> bool:
    answer = http.get(f"/requests/{request_id}").json()
    return answer.get("status") in ("succeeded", "failed")


def test_serve_exposes_the_figures_of_every_process(tmp_path):
    server = launch(tmp_path / "srv", apps=APP, concurrency=3)
    try:
        with server.client() as http:
            fanout = invoke(http, "metered_fanout", 6)
            retry = invoke(http, "metered_retry", "a")
            timeout = invoke(http, "metered_timeout", 5)
            for request_id in (fanout, retry, timeout):
                wait_for(lambda r=request_id: finished(http, r), timeout_s=30)
            replayed = http.post(
                f"/applications/metered_fanout/requests/{fanout}/replay", json={}
            )
            assert replayed.status_code in (200, 202), replayed.text
            wait_for(
                lambda: (
                    value(
                        samples(http.get("/metrics").text),
                        "cairn_requests_finished_total",
                        application="metered_fanout",
                        outcome="succeeded",
                    )
                    == 2
                ),
                timeout_s=30,
            )
            answer = http.get("/metrics")
            live = _executors_of(server.process.pid)
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain")
            assert "# HELP cairn_calls_waiting " in answer.text
            found = samples(answer.text)
    finally:
        server.stop()
    runs = {"metered_fanout": 2, "metered_retry": 1, "metered_timeout": 1}
    for app, count in runs.items():
        assert value(found, "cairn_requests_started_total", application=app) == count
        assert (
            value(
                found,
                "cairn_requests_finished_total",
                application=app,
                outcome="succeeded",
            )
            == count
        )
    # Six items, each counting 2 and timing 0.25 s, over several executors.
    assert (
        value(
            found,
            "cairn_user_counter_total",
            name="items_seen",
            function="metered_item",
        )
        == 12
    )
    assert (
        value(
            found,
            "cairn_user_timer_seconds_count",
            name="item_think",
            function="metered_item",
        )
        == 6
    )
    assert (
        value(
            found,
            "cairn_user_timer_seconds_sum",
            name="item_think",
            function="metered_item",
        )
        == 1.5
    )
    assert (
        value(
            found,
            "cairn_call_duration_seconds_count",
            function="metered_item",
            outcome="succeeded",
        )
        == 6
    )
    assert value(found, "cairn_call_retries_total", function="metered_flaky") == 1
    assert (
        value(
            found,
            "cairn_call_duration_seconds_count",
            function="metered_flaky",
            outcome="failed",
        )
        == 1
    )
    assert value(found, "cairn_call_timeouts_total", function="metered_stuck") == 1
    assert (
        value(
            found,
            "cairn_call_duration_seconds_count",
            function="metered_stuck",
            outcome="timed_out",
        )
        == 1
    )
    # Live executors (the one killed at the timeout is gone, its replacement and
    # any extra one started for waiting callers counted).
    assert value(found, "cairn_executors") == live >= 3
    assert value(found, "cairn_executors_busy") == 0
    assert value(found, "cairn_checkpoint_commit_seconds_count") >= 3
    assert value(found, "cairn_store_requests", status="succeeded") == 3


def test_sse_clients_are_counted_while_they_follow(tmp_path):
    server = launch(tmp_path / "srv", apps=APP, concurrency=2)
    try:
        with server.client() as http:
            request_id = invoke(http, "metered_wait", 3)
            opened = threading.Event()

            def follow() -> None:
                with httpx.Client(base_url=server.url, timeout=30) as own:
                    path = f"/applications/metered_wait/requests/{request_id}/progress"
                    with own.stream("GET", path) as stream:
                        opened.set()
                        for _ in stream.iter_bytes():
                            pass

            thread = threading.Thread(target=follow)
            thread.start()
            opened.wait(10)

            def clients() -> float:
                return value(samples(http.get("/metrics").text), "cairn_sse_clients")

            wait_for(lambda: clients() == 1)
            thread.join(30)
            wait_for(lambda: clients() == 0)
    finally:
        server.stop()


def test_worker_metrics_port(tmp_path):
    store = f"sqlite:///{tmp_path}/w.db"
    port = free_port()
    env = {**os.environ, "SRV_TEST_DIR": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = subprocess.Popen(
        [
            CAIRN,
            "worker",
            str(APP),
            "--store",
            store,
            "--concurrency",
            "2",
            "--metrics-port",
            str(port),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def scraped() -> dict:
            try:
                return samples(httpx.get(url, timeout=2).text)
            except httpx.HTTPError:
                return {}

        wait_for(lambda: value(scraped(), "cairn_executors") == 2, timeout_s=30)
        # A request run by the worker: created in the store by another process.
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                (
                    "import sys, runpy; from cairn import _request; "
                    f"runpy.run_path({str(APP)!r}); "
                    f"print(_request.submit('metered_fanout', (4,), {{}}, store_url={store!r}))"
                ),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        wait_for(
            lambda: (
                value(
                    scraped(),
                    "cairn_requests_finished_total",
                    application="metered_fanout",
                    outcome="succeeded",
                )
                == 1
            ),
            timeout_s=30,
        )
        found = scraped()
        assert (
            value(
                found,
                "cairn_user_counter_total",
                name="items_seen",
                function="metered_item",
            )
            == 8
        )
        assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    # The metrics child goes with its worker.
    time.sleep(0.5)
    try:
        httpx.get(url, timeout=1)
        raise AssertionError("the metrics port still answers after the worker exited")
    except httpx.HTTPError:
        pass


def test_worker_metrics_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                CAIRN,
                "worker",
                str(APP),
                "--store",
                f"sqlite:///{tmp_path}/w.db",
                "--metrics-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert "--metrics-port" in done.stderr and "cannot listen" in done.stderr
