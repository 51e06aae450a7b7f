"""How many PostgreSQL connections a Cairn process holds: PostgreSQL counts them all
against ``max_connections`` (100 by default), shared by every host of a store.

A process's stores on one database share its connections, and a process tree
listens once: an executor reads its supervisor's count of changes instead of
listening. So a ``cairn run`` or a worker holds one connection per executor, one
for the supervisor's stores and one ``LISTEN`` (it held about three per executor
and four more before)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg
import pytest

from cairn.store import open_store
from cairn.types import RequestStatus
from tests.integration.test_isolation import (
    CAIRN,
    printed_output,
    submit_nobodys,
    wait_until,
)

pytestmark = pytest.mark.postgres_only

LISTEN = "LISTEN cairn_changes"
# Beyond one connection per executor: the supervisor's stores, its LISTEN, and one
# spare (a streaming read holds a second connection while it runs).
SPARE = 3

APP = """
import os
import time

from cairn import application, function


@function()
def conn_step(i: int) -> int:
    open(os.environ["CONN_STARTED"], "w").close()
    while not os.path.exists(os.environ["CONN_GO"]):
        time.sleep(0.01)
    return i * 2


@application()
@function()
def conn_app(n: int) -> int:
    return sum(conn_step.map(list(range(n))))
"""


def sessions(url: str) -> list[str]:
    """The query (or LISTEN) of every other session on the database of ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]


def busiest(url: str, seconds: float) -> list[str]:
    """The most sessions seen on the database in ``seconds`` of sampling."""
    most: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = sessions(url)
        most = now if len(now) > len(most) else most
        time.sleep(0.02)
    return most


def test_a_local_run_holds_a_connection_per_executor_and_one_listen(
    store_url, tmp_path
):
    app = tmp_path / "conn_app.py"
    app.write_text(APP)
    started, go = tmp_path / "started", tmp_path / "go"
    concurrency = 2
    env = {
        **os.environ,
        "CAIRN_CONCURRENCY": str(concurrency),
        "CONN_STARTED": str(started),
        "CONN_GO": str(go),
    }
    run = subprocess.Popen(
        [CAIRN, "run", str(app), "--input", "2", "--store", store_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(started.exists)
        # Calls running, the live display and the waiting engine polling.
        held = busiest(store_url, 1.0)
        go.touch()
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, err
    assert printed_output(out) == 2
    assert held.count(LISTEN) == 1, held
    assert len(held) <= concurrency + SPARE, held


def test_an_idle_worker_holds_a_connection_per_executor_and_still_wakes(
    store_url, tmp_path
):
    app = tmp_path / "conn_app.py"
    app.write_text(APP)
    go = tmp_path / "go"
    go.touch()
    concurrency = 3
    env = {**os.environ, "CONN_STARTED": str(tmp_path / "started"), "CONN_GO": str(go)}
    worker = subprocess.Popen(
        [CAIRN, "worker", str(app), "--store", store_url],
        env={**env, "CAIRN_CONCURRENCY": str(concurrency)},
    )
    store = open_store(store_url)
    try:
        finished = finisher(store)
        first = submit_nobodys(store_url, "conn_app", 3, "first")
        wait_until(lambda: finished(first))
        store.close()  # this process's sessions are not the worker's
        # Idle longer than an executor trusts "nothing is due" without a change.
        held = busiest(store_url, 2.5)
        assert held.count(LISTEN) == 1, held
        assert len(held) <= concurrency + SPARE, held
        # Executors that do not listen still learn of new work at once: through
        # the count their supervisor's listener keeps.
        submitted = time.monotonic()
        second = submit_nobodys(store_url, "conn_app", 3, "second")
        store = open_store(store_url)
        finished = finisher(store)
        wait_until(lambda: finished(second), timeout_s=30)
        assert time.monotonic() - submitted < 1.5
    finally:
        store.close()
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)


def finisher(store) -> Callable[[str], bool]:
    def finished(request_id: str) -> bool:
        record = store.get_request(request_id)
        if record is None or not record.status.finished:
            return False
        assert record.status is RequestStatus.SUCCEEDED, record
        return True

    return finished


def test_a_process_s_stores_share_a_connection_and_its_forks_share_its_listen(
    store_url,
):
    request_id = submit_nobodys(store_url, "conn_app", 1)
    stores = [open_store(store_url) for _ in range(3)]
    try:
        for store in stores:  # one after another, as one thread uses them
            store.list_requests(limit=1)
        assert len(sessions(store_url)) == 1
        stores[0].change_token()  # this process listens
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                code = _child_sees_a_change(store_url, write_fd)
            finally:
                os._exit(code)
        os.close(write_fd)
        try:
            assert os.read(read_fd, 1) == b"r"  # the child took its token
        finally:
            os.close(read_fd)
        held = sessions(store_url)
        assert held.count(LISTEN) == 1, held
        assert len(held) == 3, held  # this process's, its LISTEN, the child's
        # A commit of another process reaches the child through this one's LISTEN.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from cairn.store import open_store\n"
                "s = open_store(sys.argv[1]); s.state_set(sys.argv[2], 'k', b'v')\n"
                "s.close()",
                store_url,
                request_id,
            ],
            check=True,
        )
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        for store in stores:
            store.close()


def _child_sees_a_change(store_url: str, ready: int) -> int:  # pragma: no cover
    store = open_store(store_url)
    token = store.change_token()
    store.list_requests(limit=1)
    os.write(ready, b"r")
    deadline = time.monotonic() + 20
    while store.change_token() == token:
        if time.monotonic() > deadline:
            return 2
        time.sleep(0.01)
    return 0


def test_a_connection_left_idle_beside_the_one_in_use_is_closed(store_url, monkeypatch):
    from cairn.store import _pglink

    monkeypatch.setattr(_pglink, "_SURPLUS_IDLE_S", 0.2)
    pool = _pglink.Pool(store_url, keep=3)
    try:
        first, second = pool.get(), pool.get()  # two stores busy at once
        pool.put(first)
        pool.put(second)
        assert len(sessions(store_url)) == 2
        time.sleep(0.3)
        again = pool.get()
        assert again is second  # the one used last
        pool.put(again)
        assert first.closed and not second.closed
        assert len(sessions(store_url)) == 1
    finally:
        pool.close()
