"""A PostgreSQL server of the tests' own, crashed and restarted under Cairn.

The server commits durably (``synchronous_commit=on``): a commit it acknowledged
survives ``pg_ctl stop -m immediate``, so whatever goes missing is Cairn's doing.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator

import psycopg
import pytest

from cairn.store import Store, open_store
from cairn.types import RequestStatus
from tests import postgres_server
from tests.lossy_link import LossyLink
from tests.ports import free_port

from . import apps
from .conftest import (
    Workers,
    assert_no_step_began_after_its_checkpoint,
    assert_nothing_left_behind,
    wait_finished,
)


@pytest.fixture(scope="module")
def own_server() -> Iterator[postgres_server.Cluster]:
    try:
        cluster = postgres_server.Cluster.create()
        # The WAL writer rarely writes on its own: an uncommitted transaction's
        # WAL stays unwritten until a crash loses it (and its id), as it does
        # under a busy server's next commit only by chance.
        cluster.start(
            free_port(),
            durable=True,
            settings=("wal_writer_delay=10s",),
        )
    except postgres_server.ServerUnavailable as error:
        pytest.fail(f"cannot start a PostgreSQL server of our own: {error}")
    yield cluster
    cluster.stop()


@pytest.fixture
def own_url(own_server: postgres_server.Cluster) -> str:
    name = f"cairn_restarts_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(own_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return own_server.url.rsplit("/", 1)[0] + f"/{name}"


_databases = itertools.count()


def sql(url: str, query: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query, args)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


def test_a_commit_lost_in_a_crash_is_not_taken_for_a_later_one(own_server, own_url):
    """The transaction id of a commit that a crash lost goes to the next
    transaction after the restart; that one's commit must not pass for it."""
    trapped = 0
    for attempt in range(3):
        xids = lose_a_commit_in_a_crash(own_server, own_url, f"probe-{attempt}")
        # Whatever became of the lost id, the write ran again and committed once.
        assert len(xids) == 2
        assert sql(
            own_url, "SELECT value FROM cairn_meta WHERE key = %s", f"probe-{attempt}"
        ) == [("x",)]
        status = sql(own_url, "SELECT pg_xact_status(%s::xid8)::text", xids[0])
        # The trap: the lost transaction's id now reads "committed" (unless its
        # WAL reached the kernel before the crash, as under a loaded machine).
        trapped += status == [("committed",)]
        if trapped:
            break
    assert trapped, "no crash lost the transaction's id: the trap was never set"


def lose_a_commit_in_a_crash(
    server: postgres_server.Cluster, url: str, key: str
) -> list[str]:
    """A write whose COMMIT the server never sees: it crashes meanwhile, and an
    unrelated commit follows the restart. The ids the write's attempts had."""
    link = LossyLink(url)
    store = open_store(link.url(url))
    xids: list[str] = []

    def body(conn: psycopg.Connection) -> str:
        conn.execute("INSERT INTO cairn_meta VALUES (%s, 'x')", (key,))
        row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        assert row is not None
        xids.append(str(row[0]))
        return "done"

    def crash_then_commit_something_else() -> None:
        server.restart("immediate")
        sql(url, "INSERT INTO cairn_meta VALUES (%s, 'y')", f"unrelated-{key}")

    link.cut_at_commit(forward=False, meanwhile=crash_then_commit_something_else)
    try:
        assert store._db.write(body) == "done"
    finally:
        store.close()
        link.close()
    assert link.cuts == 1
    return xids


@pytest.fixture
def own_store(own_url: str) -> Iterator[Store]:
    store = open_store(own_url)
    yield store
    store.close()


def test_requests_finish_exactly_while_postgres_crashes_and_restarts(
    own_server, own_url, own_store, tmp_path
):
    from cairn import _request

    workers = Workers(own_url, tmp_path / "effects.log")
    ids = [
        _request.submit(apps.crash_ten, (seed * 100,), {}, store_url=own_url)
        for seed in range(100)
    ]
    try:
        workers.start(CAIRN_TEST_STEP_S="0.05")
        workers.start(CAIRN_TEST_STEP_S="0.05")
        restarts = {"immediate": 0, "fast": 0}
        deadline = time.monotonic() + 240
        for mode in itertools.cycle(restarts):
            time.sleep(1.5)
            if not unfinished(own_url) or time.monotonic() > deadline:
                break
            own_server.restart(mode)
            restarts[mode] += 1
        assert restarts["immediate"] >= 3 and restarts["fast"] >= 3, (
            f"the run finished before the chaos began: {restarts}"
        )
        for seed, request_id in enumerate(ids):
            wait_finished(own_store, request_id, timeout_s=90)
            record = own_store.get_request(request_id)
            assert record is not None, request_id
            assert record.status is RequestStatus.SUCCEEDED, (request_id, record)
            assert record.output == str(sum(seed * 100 + i for i in range(10))).encode()
            assert_nothing_left_behind(own_store, request_id)
        ran = workers.effect_counts()
        assert len(ran) == 100 * 10  # every step ran
        assert_no_step_began_after_its_checkpoint(own_store, ids, workers.effects)
        # No checkpoint a request's output was made of went missing: replaying
        # every request runs none of its steps again.
        for request_id in ids:
            own_store.start_replay(
                request_id, from_call=None, strict=False, now_ms=time.time() * 1000
            )
        for request_id in ids:
            wait_finished(own_store, request_id, timeout_s=90)
            record = own_store.get_request(request_id)
            assert record is not None and record.status is RequestStatus.SUCCEEDED
        assert workers.effect_counts() == ran
        assert all(w.poll() is None for w in workers.running), "workers must survive"
        settled = workers.logs().count("the commit whose answer was lost")
        print(f"restarts {restarts}, lost commit answers settled: {settled}")
    finally:
        workers.stop_all()


def unfinished(url: str) -> int:
    while True:
        try:
            rows = sql(
                url,
                "SELECT count(*) FROM requests WHERE status IN ('pending', 'running')",
            )
            return int(str(rows[0][0]))
        except psycopg.OperationalError:
            time.sleep(0.2)  # still starting up
