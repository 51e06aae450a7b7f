"""The PostgreSQL store's own concerns: bad input, schema checks, lost connections,
wake-ups, and the races SQLite's single writer never has."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator

import psycopg
import pytest

import cairn
from cairn.store import SCHEMA_VERSION, KeptStore, Store, open_store
from cairn.store import _pg as pgmod
from cairn.store import _pgmarks as pgmarks
from cairn.store._kept import CHECK_DATABASE_EVERY_S
from cairn.store.errors import DuplicateKey
from cairn.types import CallStatus, RequestStatus
from tests import postgres_server
from tests.lossy_link import LossyLink
from tests.ports import free_port

from .test_sqlite_files import EXPECTED_SCHEMA, schema_1_sql
from .test_store import T0, child, event, new_request, succeeded_app, success


@pytest.fixture
def empty_url() -> Iterator[str]:
    """A new database without Cairn's schema."""
    server = postgres_server.server()
    url = server.create_database(migrated=False)
    yield url
    server.drop_database(url)


@pytest.fixture
def pg(empty_url: str) -> Iterator[Store]:
    """A PostgreSQL store on its own database."""
    store = open_store(empty_url)
    yield store
    store.close()


def sql(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def with_db(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


# -- bad input -----------------------------------------------------------------------------------
def test_bad_urls_get_one_clear_message(empty_url):
    base = urllib.parse.urlsplit(empty_url)
    cases = {
        f"{empty_url}?bogus=1": "bogus",
        f"{empty_url}?timeout=soon": "timeout='soon'",
        f"{empty_url}?timeout=-1": r"keeps trying to reach the database, a number in \(0",
        f"postgresql://{base.hostname}:notaport/x": "port",
    }
    for url, fragment in cases.items():
        with pytest.raises(cairn.StoreError, match=fragment) as error:
            open_store(url)
        assert "Traceback" not in str(error.value)
        assert "\n" not in str(error.value)


def test_a_missing_database_is_named_with_the_command_that_makes_it(empty_url):
    url = with_db(empty_url, "cairn_no_such_db")
    with pytest.raises(cairn.StoreError) as error:
        open_store(url)
    message = str(error.value)
    assert "database 'cairn_no_such_db' does not exist" in message
    assert "createdb" in message and "cairn db migrate" in message


def test_an_unknown_user_and_a_password_are_reported_without_the_password(empty_url):
    parts = urllib.parse.urlsplit(empty_url)
    netloc = f"cairn_nobody:s3cret@{parts.hostname}:{parts.port or 5432}"
    url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    with pytest.raises(cairn.StoreError) as error:
        open_store(url)
    assert "cairn_nobody" in str(error.value)
    assert "s3cret" not in str(error.value)


def test_nothing_listening_and_an_unreachable_host(empty_url):
    with pytest.raises(cairn.StoreError, match="connection refused"):
        open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(cairn.StoreError, match="did not answer within 1s"):
            open_store(f"postgresql://postgres@127.0.0.1:{port}/x?connect_timeout=1")
        assert time.monotonic() - started < 10


def test_an_empty_database_is_migrated_and_a_foreign_one_is_left_alone(empty_url):
    store = open_store(empty_url)
    assert store.schema_before == 0
    store.close()
    again = open_store(empty_url)
    assert again.schema_before == SCHEMA_VERSION
    again.close()
    assert sql(empty_url, "SELECT value FROM cairn_meta") == [(str(SCHEMA_VERSION),)]

    server = postgres_server.server()
    foreign = server.create_database(migrated=False)
    try:
        sql(foreign, "CREATE TABLE invoices (id int)")
        with pytest.raises(cairn.StoreError, match="not a Cairn store") as error:
            open_store(foreign)
        assert "invoices" in str(error.value)
        tables = sql(
            foreign,
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
        )
        assert tables == [("invoices",)]
    finally:
        server.drop_database(foreign)


def test_a_database_made_at_schema_1_is_upgraded_with_its_data(empty_url):
    with psycopg.connect(empty_url, autocommit=True) as conn:
        conn.execute(schema_1_sql("postgres"))
        conn.execute(
            "INSERT INTO requests (id, application, status, input, created_at_ms) "
            "VALUES ('old', 'app', 'running', '{}'::bytea, 1.0)"
        )
        conn.execute(
            "INSERT INTO calls (id, request_id, seq, function, kind, dispatched, "
            "status, run) VALUES ('old', 'old', 0, 'app', 'app', 1, 'running', 1)"
        )
    store = open_store(empty_url)
    try:
        assert store.schema_before == 1
        assert [c.id for c in store.list_calls("old")] == ["old"]
        assert store.list_children("old", "old") == []
    finally:
        store.close()
    assert sql(empty_url, "SELECT value FROM cairn_meta") == [(str(SCHEMA_VERSION),)]
    indexes = {
        str(row[0])
        for row in sql(
            empty_url,
            "SELECT indexname FROM pg_indexes WHERE tablename = 'calls' "
            "AND schemaname = current_schema()",
        )
    }
    assert "calls_by_parent" not in indexes and "calls_by_request" in indexes
    (definition,) = sql(
        empty_url,
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'calls_by_request'",
    )
    assert "(request_id, parent_id, seq, event_seq)" in str(definition[0])


def test_a_newer_schema_is_refused(empty_url):
    open_store(empty_url).close()
    sql(empty_url, "UPDATE cairn_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(cairn.StoreError, match="schema version 99, newer than"):
        open_store(empty_url)


def test_the_schema_has_the_same_tables_and_columns_as_sqlite(pg):
    rows = sql(
        pg.url,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
    )
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(str(table), []).append(str(column))
    # PostgreSQL alone settles commits whose answer was lost in the network.
    assert found.pop("commit_marks") == ["slot", "mark", "used_at"]
    assert found == EXPECTED_SCHEMA


def test_concurrent_openers_migrate_once(empty_url):
    failures: list[BaseException] = []

    def open_and_close() -> None:
        try:
            open_store(empty_url).close()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert sql(empty_url, "SELECT value FROM cairn_meta") == [(str(SCHEMA_VERSION),)]


# -- lost connections -----------------------------------------------------------------------------
def kill_sessions(url: str) -> int:
    rows = sql(
        url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    return int(rows[0][0])


def test_operations_reconnect_after_the_sessions_are_killed(pg, caplog):
    root = new_request(pg)
    assert pg.change_token() is not None
    caplog.set_level(logging.WARNING, logger="cairn.store.postgres")
    for _ in range(3):
        assert kill_sessions(pg.url) >= 1
        a = child(root, f"a{_}", _)
        pg.enqueue_calls([(a, b"args", 0.0)], 1)  # a write
        assert pg.get_call_args(a.id) == b"args"  # a read
    assert "reconnecting" in caplog.text
    events_before = len(pg.list_events("req-1"))
    kill_sessions(pg.url)
    pg.commit_success(
        success(child(root, "x", 9, dispatched=False), events=[event("X")])
    )
    assert len(pg.list_events("req-1")) == events_before + 1  # committed once


def stamp(conn: psycopg.Connection, slot: str, mark: int) -> None:
    """What every write does last: stamp its connection's commit mark."""
    conn.execute(
        pgmod.Q["end_transaction"],
        {"slot": slot, "mark": mark, "notify": False, "channel": "x", "origin": "x"},
    )


LOST = psycopg.OperationalError("the connection was lost")


def test_a_lost_commit_is_settled_by_its_mark_not_by_its_transaction_id(pg):
    db = pg._db
    with psycopg.connect(pg.url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("INSERT INTO cairn_meta VALUES ('probe', 'x')")
            stamp(conn, "slot-a", 1)
        with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
            conn.execute("INSERT INTO cairn_meta VALUES ('probe-2', 'x')")
            stamp(conn, "slot-a", 2)
            conn.execute("INSERT INTO cairn_meta VALUES ('probe', 'x')")
    assert db.committed("slot-a", 1, LOST)
    assert not db.committed("slot-a", 2, LOST)
    # A slot that never committed is stamped by the question, so that no late
    # commit of that connection can follow the answer "it did not happen".
    assert not db.committed("slot-never", 1, LOST)
    assert sql(pg.url, "SELECT mark FROM commit_marks WHERE slot = 'slot-never'") == [
        (-1,)
    ]


def test_settling_waits_for_a_commit_still_in_flight(pg):
    db = pg._db
    answers: list[bool] = []
    with psycopg.connect(pg.url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("INSERT INTO cairn_meta VALUES ('probe', 'x')")
            stamp(conn, "slot-b", 7)  # first use of the slot: an insert in flight
            asking = threading.Thread(
                target=lambda: answers.append(db.committed("slot-b", 7, LOST))
            )
            asking.start()
            time.sleep(0.3)
            assert answers == []  # waiting on the row the commit holds
        asking.join(10)
    assert answers == [True]
    with psycopg.connect(pg.url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("DELETE FROM cairn_meta WHERE key = 'probe'")
            stamp(conn, "slot-b", 8)  # an update of the slot's row in flight
            asking = threading.Thread(
                target=lambda: answers.append(db.committed("slot-b", 8, LOST))
            )
            asking.start()
            time.sleep(0.3)
            assert answers == [True]
            raise psycopg.Rollback()
        asking.join(10)
    assert answers == [True, False]


@pytest.mark.parametrize("pipelined", [False, True])
@pytest.mark.parametrize("reached_the_server", [True, False])
def test_a_write_whose_commit_answer_is_cut_runs_once_and_commits_once(
    empty_url, reached_the_server, pipelined
):
    link = LossyLink(empty_url)
    store = open_store(link.url(empty_url))
    runs: list[int] = []

    def body(conn: psycopg.Connection) -> str:
        runs.append(1)
        conn.execute("INSERT INTO cairn_meta VALUES ('probe', 'x')")
        return "done"

    try:
        link.cut_at_commit(forward=reached_the_server)
        assert store._db.write(body, pipelined=pipelined) == "done"
    finally:
        store.close()
        link.close()
    assert link.cuts == 1
    # Committed before the cut: not run again (it would fail on the key). Not
    # committed: run again, and committed once.
    assert len(runs) == (1 if reached_the_server else 2)
    assert sql(empty_url, "SELECT value FROM cairn_meta WHERE key = 'probe'") == [
        ("x",)
    ]


@pytest.mark.parametrize("reached_the_server", [True, False])
def test_a_write_sent_whole_whose_commit_answer_is_cut_commits_once(
    empty_url, reached_the_server
):
    """``write_all`` sends BEGIN, its statements and COMMIT at once: a lost answer
    is settled by the commit mark, and the write runs again only if it did not
    commit (again, it would fail on the key)."""
    link = LossyLink(empty_url)
    store = open_store(link.url(empty_url))
    insert = "INSERT INTO cairn_meta VALUES (%(key)s, 'x')"
    try:
        link.cut_at_commit(forward=reached_the_server)
        counts = store._db.write_all(
            [(insert, {"key": "probe"}), (insert, {"key": "probe-2"})]
        )
    finally:
        store.close()
        link.close()
    assert link.cuts == 1
    # Its answer lost, a commit that happened has no row counts to tell.
    assert counts == (None if reached_the_server else [1, 1])
    assert sql(
        empty_url, "SELECT key FROM cairn_meta WHERE key LIKE 'probe%' ORDER BY key"
    ) == [("probe",), ("probe-2",)]


@pytest.mark.parametrize("reached_the_server", [True, False])
def test_a_statement_sent_alone_whose_answer_is_cut_commits_once(
    empty_url, reached_the_server
):
    """A ``write_all`` of one statement sends it alone, its own transaction with
    the commit mark in its WITH list: no BEGIN, no COMMIT, and still a lost
    answer is settled by the mark (run again, it would fail on the key)."""
    link = LossyLink(empty_url)
    store = open_store(link.url(empty_url))
    insert = "INSERT INTO cairn_meta VALUES ('probe', %(value)s)"
    try:
        link.cut_at_commit(forward=reached_the_server, marker=b"sent-alone")
        counts = store._db.write_all([(insert, {"value": "sent-alone"})])
        again = insert.replace("'probe'", "%(key)s")
        store._db.write_all([(again, {"key": "probe-2", "value": "y"})])  # reconnects
        turns = link.turns
        store._db.write_all([(again, {"key": "probe-3", "value": "y"})])
        assert link.turns == turns + 1  # one message and one answer
    finally:
        store.close()
        link.close()
    assert link.cuts == 1
    assert counts == (None if reached_the_server else [1])
    assert sql(empty_url, "SELECT value FROM cairn_meta WHERE key = 'probe'") == [
        ("sent-alone",)
    ]


def test_the_commit_mark_goes_first_in_a_statement_sent_alone():
    plain = "-- a comment\nINSERT INTO t VALUES (%(v)s)"
    assert pgmarks.with_commit_mark(plain).startswith("WITH commit_mark AS (")
    assert pgmarks.with_commit_mark(plain).endswith(")\nINSERT INTO t VALUES (%(v)s)")
    with_list = "WITH a AS (SELECT 1)\nSELECT * FROM a"
    assert pgmarks.with_commit_mark(with_list).endswith(
        "),\na AS (SELECT 1)\nSELECT * FROM a"
    )
    recursive = "WITH RECURSIVE a (n) AS (SELECT 1) SELECT * FROM a"
    marked = pgmarks.with_commit_mark(recursive)
    assert marked.startswith("WITH RECURSIVE commit_mark AS (")
    assert marked.endswith("),\na (n) AS (SELECT 1) SELECT * FROM a")
    with pytest.raises(ValueError, match="commit mark"):
        pgmarks.with_commit_mark("UPDATE t SET mark = %(mark)s")


def test_a_write_that_wrote_nothing_stamps_nothing(pg):
    db = pg._db
    before = sql(pg.url, "SELECT count(*) FROM commit_marks")
    assert db.write(lambda conn: conn.execute("SELECT 1").fetchone()) == (1,)
    assert sql(pg.url, "SELECT count(*) FROM commit_marks") == before


def test_change_token_sees_other_processes_and_survives_a_lost_listener(pg):
    new_request(pg)
    token = pg.change_token()
    assert pg.change_token() == token
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cairn.store import open_store\n"
            "s = open_store(sys.argv[1]); s.state_set('req-1', 'k', b'v'); s.close()",
            pg.url,
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while pg.change_token() == token:
        assert time.monotonic() < deadline, "no notification from the other process"
        time.sleep(0.01)
    kill_sessions(pg.url)
    seen = {pg.change_token() for _ in range(3)}
    deadline = time.monotonic() + 10
    while True:  # listening again: the token holds still until the next commit
        first, second = pg.change_token(), pg.change_token()
        if first == second and first >= 0:
            break
        assert time.monotonic() < deadline, "the listener did not come back"
        time.sleep(0.05)
    assert seen


def _in_another_process(url: str, code: str) -> None:
    """Run ``code`` with ``s``, a store on ``url``, in a process of its own."""
    script = (
        "import sys\nfrom cairn.store import Event, open_store\n"
        f"s = open_store(sys.argv[1])\n{code}\ns.close()"
    )
    subprocess.run([sys.executable, "-c", script, url], check=True)


def _until_moved(token_of, token: int) -> int:
    deadline = time.monotonic() + 10
    while (now := token_of()) == token:
        assert time.monotonic() < deadline, "no notification from the other process"
        time.sleep(0.01)
    return now


def test_idle_workers_look_for_work_only_after_commits_that_may_make_some(pg):
    # Progress, checkpoints and a request's end notify as progress only: waiters
    # of requests see them, an idle worker's "nothing due" stands.
    root = new_request(pg)
    pg.claim_call("w", 0, T0 + 10)
    token = pg.change_token()
    queue_token = pg._dialect.change_token(queue=True)
    queries: list[str] = []
    one = pg._one
    pg._one = lambda name, params: queries.append(name) or one(name, params)
    assert not pg.runnable_exists(T0 + 10)
    assert queries == ["next_due"]
    progress = (
        "s.set_progress('req-1', {'n': 1}, "
        "Event(kind='P', payload={}, created_at_ms=0.0))"
    )
    _in_another_process(pg.url, progress)
    token = _until_moved(pg.change_token, token)
    pg.commit_success(success(child(root, "a", 0)))  # this process's checkpoint
    assert pg._dialect.change_token(queue=True) == queue_token
    assert not pg.runnable_exists(T0 + 10)
    assert queries == ["next_due"]  # not asked again: nothing can have become due
    _in_another_process(pg.url, "s.state_set('req-1', 'k', b'v')")
    _until_moved(lambda: pg._dialect.change_token(queue=True), queue_token)
    assert not pg.runnable_exists(T0 + 10)
    assert queries == ["next_due", "next_due"]


def test_check_notices_a_dropped_database_or_dropped_tables(empty_url):
    store = open_store(empty_url)
    store.check()
    sql(empty_url, "DROP TABLE attempts, events, request_state, calls")
    with pytest.raises(cairn.StoreReplaced):
        store.check()
    store.close()
    server = postgres_server.server()
    url = server.create_database()
    other = open_store(url)
    server.drop_database(url)
    with pytest.raises(cairn.StoreReplaced, match="dropped"):
        other.check()
    other.close()


def test_a_kept_store_asks_the_database_at_most_once_a_second(empty_url, monkeypatch):
    asked: list[int] = []
    real_identity = pgmod.identity

    def counted(conn: psycopg.Connection) -> tuple[int, int]:
        asked.append(1)
        return real_identity(conn)

    monkeypatch.setattr(pgmod, "identity", counted)
    kept = KeptStore(open_store(empty_url))
    assert asked == [1]  # read as it opened
    kept.check()
    assert asked == [1]
    sql(empty_url, "DROP TABLE attempts, events, request_state, calls")
    kept.check()  # within the second: not asked, and so not noticed...
    assert asked == [1]
    with pytest.raises(cairn.StoreReplaced, match="dropped while in use"):
        kept.store.get_call("call-1")  # ...until a statement finds no table
    kept.checked_at -= CHECK_DATABASE_EVERY_S
    with pytest.raises(cairn.StoreReplaced):
        kept.check()
    assert asked == [1, 1]
    kept.store.close()


def test_a_kept_sqlite_store_is_checked_before_every_use(tmp_path):
    kept = KeptStore(open_store(f"sqlite:///{tmp_path / 'kept.db'}"))
    kept.check()
    (tmp_path / "kept.db").unlink()
    with pytest.raises(cairn.StoreReplaced, match="deleted"):
        kept.check()
    kept.store.close()


# -- races ------------------------------------------------------------------------------------------
def race(stores: list[Store], work) -> None:
    barrier = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index, stores[index])
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures


def test_max_concurrency_holds_across_connections(pg):
    root = new_request(pg)
    pg.claim_call("w", 0, T0, call_id=root.id)
    keys = [child(root, "capped", i, kind="map_item", group_id="g") for i in range(12)]
    pg.enqueue_calls([(k, None, 0.0) for k in keys], 1)
    stores = [pg.reopen() for _ in range(4)]
    try:
        for _round in range(3):

            def claim(index: int, store: Store) -> None:
                for _ in range(3):
                    store.claim_call(f"w{index}", index, T0, caps={"capped": 2})

            race(stores, claim)
            running = [
                c for c in pg.list_calls("req-1") if c.status is CallStatus.RUNNING
            ]
            assert len([c for c in running if c.function == "capped"]) == 2
    finally:
        for store in stores:
            store.close()


def test_two_workers_finishing_the_last_calls_end_the_request_once(pg):
    for attempt in range(5):
        request_id = f"req-race-{attempt}"
        root = new_request(pg, request_id)
        pg.claim_call("w", 0, T0, call_id=root.id)
        keys = [child(root, f"last{i}", i) for i in range(2)]
        pg.enqueue_calls([(k, None, 0.0) for k in keys], 1)
        pg.commit_success(success(root, request_outcome=succeeded_app()))
        for i, key in enumerate(keys):
            assert pg.claim_call("w", i + 1, T0, call_id=key.id)
        stores = [pg.reopen(), pg.reopen()]
        try:
            race(stores, lambda i, s, keys=keys: s.commit_success(success(keys[i])))
        finally:
            for store in stores:
                store.close()
        record = pg.get_request(request_id)
        assert record is not None and record.status is RequestStatus.SUCCEEDED
        kinds = [e.kind for e in pg.list_events(request_id)]
        assert kinds.count("RequestFinished") == 1
        seqs = [e.seq for e in pg.list_events(request_id)]
        assert seqs == list(range(1, len(seqs) + 1))


def test_a_group_claim_takes_items_in_order_and_never_twice(pg):
    root = new_request(pg)
    keys = [child(root, "item", i, kind="map_item", group_id="g") for i in range(30)]
    pg.enqueue_calls([(k, None, 0.0) for k in reversed(keys)], 1)
    stores = [pg.reopen(), pg.reopen(), pg.reopen()]
    taken: list[list[str]] = [[], [], []]
    try:

        def claim(index: int, store: Store) -> None:
            while batch := store.claim_group(f"w{index}", index, T0, "g", 4):
                seqs = [c.record.seq for c in batch]
                assert seqs == sorted(seqs)
                taken[index].extend(c.record.id for c in batch)

        race(stores, claim)
    finally:
        for store in stores:
            store.close()
    every = [i for ids in taken for i in ids]
    assert sorted(every) == sorted(k.id for k in keys)
    assert len(set(every)) == len(every)


def test_the_commit_that_ends_a_request_is_one_statement_sent_alone(empty_url):
    """The application call's checkpoint, the request's end and its RequestFinished
    go in one statement, its own transaction: one message and one answer, no
    BEGIN and no COMMIT."""
    link = LossyLink(empty_url)
    store = open_store(link.url(empty_url))
    try:
        root = new_request(store)
        before, sent_before = link.turns, len(link.sent)
        store.commit_success(success(root, request_outcome=succeeded_app()))
        turns, sent = link.turns - before, bytes(link.sent[sent_before:])
        record = store.get_request("req-1")
        events = store.list_events("req-1")
    finally:
        store.close()
        link.close()
    assert turns == 1
    assert b"BEGIN" not in sent and b"COMMIT" not in sent
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    assert record.output == b'"done"'
    assert [e.kind for e in events][-1] == "RequestFinished"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_a_statement_sent_alone_is_prepared_at_its_first_use(empty_url):
    """Its first use on a connection prepares it in the round trip that runs it;
    later uses send its parameters, not its text, for the server to parse again
    (psycopg alone would send the text at each of the first five)."""
    link = LossyLink(empty_url)
    store = open_store(link.url(empty_url))
    turns, text_sent = [], []
    try:
        for request_id in ("req-1", "req-2", "req-3"):
            root = new_request(store, request_id)
            before, sent_before = link.turns, len(link.sent)
            store.commit_success(success(root, request_outcome=succeeded_app()))
            turns.append(link.turns - before)
            text_sent.append(b"RequestFinished" in link.sent[sent_before:])
    finally:
        store.close()
        link.close()
    assert turns == [1, 1, 1]
    assert text_sent == [True, False, False]


def test_a_statement_sent_alone_that_fails_is_prepared_on_the_server_once_at_most(
    empty_url,
):
    """psycopg forgets a statement it prepared for an execution that failed, but
    the server keeps it: prepared again at each use, every failure would leave
    one more prepared statement on the connection."""
    store = open_store(empty_url)
    insert = "INSERT INTO cairn_meta VALUES ('schema_version', %(value)s)"  # taken
    count = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s"
    try:
        for _ in range(5):
            with pytest.raises(DuplicateKey):
                store._db.write_all([(insert, {"value": "x"})])
        row = store._db.read(
            lambda conn: conn.execute(count, ["%cairn_meta%"]).fetchone()
        )
    finally:
        store.close()
    assert row is not None and row[0] <= 1


def _ended_once(store: Store, request_id: str) -> None:
    """The request succeeded, with one RequestFinished (its last event), its
    application call's events once each, and no gap in its numbers."""
    record = store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.SUCCEEDED
    events = store.list_events(request_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    kinds = [e.kind for e in events]
    assert kinds.count("RequestFinished") == 1 and kinds[-1] == "RequestFinished"
    root_events = [
        e.kind for e in events if e.payload.get("function_run_id") == request_id
    ]
    assert sorted(root_events) == ["FunctionRunCompleted", "FunctionRunCreated"]


@pytest.mark.parametrize("reached_the_server", [True, False])
def test_a_lost_answer_to_the_commit_that_ends_a_request_is_settled(
    empty_url, reached_the_server
):
    """The answer of the one statement that ends a request is cut: committed, its
    record is read back (it wrote the application call's row as this attempt
    finished it); not committed, it is sent again. Either way it ends once."""
    link = LossyLink(empty_url)
    store = open_store(link.url(empty_url))
    try:
        root = new_request(store)
        store.claim_call("w", 0, T0, call_id=root.id)
        link.cut_at_commit(forward=reached_the_server, marker=b"'RequestFinished'")
        ended = store.commit_success(
            success(root, request_outcome=succeeded_app(), events_from_row=True),
            read_back=True,
        )
        assert link.cuts == 1
        assert ended is not None and ended == store.get_request("req-1")
        _ended_once(store, "req-1")
    finally:
        store.close()
        link.close()


def test_an_application_call_that_ends_as_its_last_dispatched_call_does_ends_once(
    pg, empty_url
):
    """The statement that ends a request reads its dispatched calls in a snapshot
    taken before it waits for the request's row lock. The last dispatched call's
    commit holds that lock, finishes the call and, seeing the application call
    still running, leaves the request open; the ending statement then sees that
    call as still running and writes nothing, and the store commits the general
    way, which looks again under the lock: the request ends, once."""
    root = new_request(pg, "req-late")
    pg.claim_call("w", 0, T0, call_id=root.id)
    last = child(root, "last", 0)
    pg.enqueue_calls([(last, None, 0.0)], 1)
    assert pg.claim_call("w", 1, T0, call_id=last.id)
    answers: list[object] = []
    with psycopg.connect(empty_url) as conn:
        conn.execute("SELECT 1 FROM requests WHERE id = 'req-late' FOR UPDATE")
        conn.execute("UPDATE calls SET status = 'succeeded' WHERE id = %s", [last.id])
        ending = threading.Thread(
            target=lambda: answers.append(
                pg.commit_success(
                    success(
                        root, request_outcome=succeeded_app(), events_from_row=True
                    ),
                    read_back=True,
                )
            )
        )
        ending.start()
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        deadline = time.monotonic() + 10
        while sql(empty_url, waiting) != [(1,)]:
            assert time.monotonic() < deadline, "the ending statement never waited"
            time.sleep(0.01)
        conn.commit()
    ending.join(10)
    assert answers == [pg.get_request("req-late")]
    _ended_once(pg, "req-late")
