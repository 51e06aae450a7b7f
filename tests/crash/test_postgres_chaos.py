"""PostgreSQL connections killed again and again while 100 requests run."""

from __future__ import annotations

import time
import urllib.parse

import psycopg
import pytest

from cairn import _request
from cairn.types import RequestStatus

from . import apps
from .conftest import (
    assert_no_step_began_after_its_checkpoint,
    assert_nothing_left_behind,
    wait_finished,
)


@pytest.mark.postgres_only
def test_requests_finish_while_postgres_connections_are_killed(
    workers, crash_store, store_url
):
    database = urllib.parse.urlsplit(store_url).path.lstrip("/")
    ids = [
        _request.submit(apps.crash_ten, (seed * 100,), {}, store_url=store_url)
        for seed in range(100)
    ]
    workers.start()
    workers.start()
    rounds = 0
    killed = 0
    deadline = time.monotonic() + 240
    with psycopg.connect(store_url, autocommit=True) as admin:
        while time.monotonic() < deadline:
            time.sleep(0.7)
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
            killed += len(rows)
            rounds += 1
            statuses = admin.execute(
                "SELECT count(*) FROM requests WHERE status IN ('pending', 'running')"
            ).fetchone()
            if statuses is not None and statuses[0] == 0:
                break
    assert rounds >= 3 and killed >= 3, "the run finished before the chaos began"
    for seed, request_id in enumerate(ids):
        wait_finished(crash_store, request_id, timeout_s=60)
        record = crash_store.get_request(request_id)
        assert record is not None and record.status is RequestStatus.SUCCEEDED, (
            request_id
        )
        assert record.output == str(sum(seed * 100 + i for i in range(10))).encode()
        assert_nothing_left_behind(crash_store, request_id)
    counts = workers.effect_counts()
    assert len(counts) == 100 * 10  # every step ran
    # A step ran twice only if a connection died between its run and its commit.
    assert sum(n - 1 for n in counts.values()) <= killed
    # And never after its checkpoint committed: every committed call ran once.
    assert_no_step_began_after_its_checkpoint(crash_store, ids, workers.effects)
    assert all(w.poll() is None for w in workers.running), "workers must survive"
    assert "lost" in workers.logs().lower() or "reconnect" in workers.logs().lower()
