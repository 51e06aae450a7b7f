"""``cairn worker`` started before its database can be reached (a service manager
starting both, a server restarting) waits for it instead of exiting; a database
that refuses it for good (no such database) still fails at once, clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from cairn.store import open_store
from cairn.types import RequestStatus
from tests.integration.test_isolation import CAIRN, submit_nobodys, wait_until
from tests.lossy_link import LossyLink, through
from tests.ports import free_port

pytestmark = pytest.mark.postgres_only

APP = """
from cairn import application, function


@function()
def double(n: int) -> int:
    return 2 * n


@application()
@function()
def waits_app(n: int) -> int:
    return double(n)
"""


def start_worker(app: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as stderr:
        return subprocess.Popen(
            [CAIRN, "worker", str(app), "--store", url],
            env={**os.environ, "CAIRN_CONCURRENCY": "1"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def test_a_worker_started_before_its_database_serves_once_it_is_reachable(
    store_url, tmp_path
):
    app = tmp_path / "waits_app.py"
    app.write_text(APP)
    log = tmp_path / "worker.log"
    port = free_port()  # nothing listens there yet
    worker = start_worker(app, through(store_url, port), log)
    link = None
    try:
        wait_until(
            lambda: (
                log.read_text().count("trying again") >= 2 or worker.poll() is not None
            ),
            timeout_s=60,
        )
        assert worker.poll() is None, log.read_text()
        assert "connection refused" in log.read_text()
        link = LossyLink(store_url, port=port)  # the database is reachable now
        request_id = submit_nobodys(store_url, "waits_app", 21)
        store = open_store(store_url)
        try:
            wait_until(
                lambda: (
                    (r := store.get_request(request_id)) is not None
                    and r.status.finished
                ),
                timeout_s=60,
            )
            record = store.get_request(request_id)
            assert record is not None and record.status is RequestStatus.SUCCEEDED
            assert record.output == b"42"
        finally:
            store.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
        if link is not None:
            link.close()


def test_a_worker_refused_for_good_exits_at_once_with_the_reason(store_url, tmp_path):
    app = tmp_path / "waits_app.py"
    app.write_text(APP)
    log = tmp_path / "worker.log"
    parts = urllib.parse.urlsplit(store_url)
    missing = urllib.parse.urlunsplit(parts._replace(path="/cairn_no_such_database"))
    started = time.monotonic()
    worker = start_worker(app, missing, log)
    assert worker.wait(60) != 0
    assert time.monotonic() - started < 60
    assert "does not exist" in log.read_text()
    assert "trying again" not in log.read_text()
