"""The SQLite store's file handling: bad input fails clearly and nothing is damaged."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import cairn
from cairn.store import (
    SCHEMA_VERSION,
    CallKey,
    Event,
    NewRequest,
    Store,
    _sqlite_file,
    open_store,
)

# The schema migrations must produce: table -> columns in order.
EXPECTED_SCHEMA = {
    "attempts": [
        "call_id",
        "attempt",
        "request_id",
        "run",
        "outcome",
        "error_json",
        "started_at_ms",
        "finished_at_ms",
        "retry_delay_s",
        "code_version",
    ],
    "cairn_meta": ["key", "value"],
    "calls": [
        "id",
        "request_id",
        "parent_id",
        "seq",
        "function",
        "kind",
        "group_id",
        "dispatched",
        "status",
        "args",
        "output",
        "error_json",
        "run",
        "run_attempts",
        "attempts",
        "served_run",
        "not_before_ms",
        "worker_id",
        "executor",
        "state_writes",
        "started_at_ms",
        "finished_at_ms",
        "code_version",
        "priority",
        "concurrency_key",
        "event_seq",
    ],
    "events": ["request_id", "seq", "kind", "payload", "created_at_ms"],
    "request_state": ["request_id", "key", "value"],
    "requests": [
        "id",
        "application",
        "code_ref",
        "status",
        "failure_reason",
        "error_json",
        "input",
        "output",
        "headers_json",
        "run",
        "strict_replay",
        "event_seq",
        "progress_json",
        "created_at_ms",
        "started_at_ms",
        "finished_at_ms",
        "owner",
        "priority",
    ],
    "rate_limits": ["function", "tokens", "updated_at_ms", "per_ms", "burst"],
    "schedules": [
        "id",
        "application",
        "cron",
        "input",
        "paused",
        "next_at_ms",
        "last_at_ms",
        "last_request_id",
        "created_at_ms",
    ],
    "signals": [
        "request_id",
        "seq",
        "name",
        "value",
        "encoding",
        "wait_id",
        "created_at_ms",
    ],
    "waits": [
        "id",
        "request_id",
        "call_id",
        "kind",
        "name",
        "due_at_ms",
        "status",
        "created_at_ms",
        "finished_at_ms",
    ],
    "worker_functions": ["worker_id", "function", "code_version"],
    "workers": ["id", "host", "pid", "started_at_ms", "heartbeat_at_ms"],
}
EXPECTED_INDEXES = {
    "calls_by_group",
    "calls_by_request",
    "calls_by_worker",
    "calls_due",
    "calls_runnable",
    "calls_running_by_key",
    "requests_by_app",
    "requests_by_created",
    "schedules_due",
    "signals_by_wait",
    "signals_waiting",
    "waits_by_call",
    "waits_by_request",
    "waits_on_children",
    "worker_functions_by_function",
}


def _url(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}{query}"


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=0.1)


def schema_1_sql(dialect: str) -> str:
    """Migration 1 alone, marked as applied: a store as the first schema made it."""
    from cairn.store import _sql

    ((_number, _name, first),) = [m for m in _sql.migrations(dialect) if m[0] == 1]
    return first + ";\nINSERT INTO cairn_meta VALUES ('schema_version', '1');"


def write_schema_1_store(path: Path, rows_sql: str = "") -> None:
    """A SQLite file at schema 1, with ``rows_sql`` run on it."""
    conn = _raw(path)
    try:
        conn.executescript(schema_1_sql("sqlite") + rows_sql)
    finally:
        conn.close()


def _schema(path: Path) -> tuple[dict[str, list[str]], set[str]]:
    conn = _raw(path)
    try:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        columns = {
            table: [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            for table in tables
        }
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND name NOT LIKE 'sqlite_%'"
            )
        }
        return columns, indexes
    finally:
        conn.close()


def _create_request(store: Store, request_id: str) -> None:
    store.create_request(
        NewRequest(
            id=request_id,
            application="app",
            code_ref=None,
            input=b"{}",
            headers={},
            created_at_ms=1.0,
        ),
        CallKey(
            id=request_id,
            request_id=request_id,
            parent_id=None,
            seq=0,
            function="app",
            kind="app",
            group_id=request_id,
            dispatched=True,
        ),
        b"",
    )


def _pragma(store: Store, name: str) -> Any:
    """A PRAGMA as the store's own connection sees it (per-connection settings)."""
    conn: sqlite3.Connection = getattr(store, "_conn")  # noqa: B009
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sqlite_file, "BUSY_TIMEOUT_S", 0.2)


# -- files that are not Cairn stores -------------------------------------------------------------
def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    with pytest.raises(cairn.StoreError) as error:
        open_store(_url(path))
    assert str(path) in str(error.value)
    assert path.read_bytes() == content


def test_a_foreign_sqlite_database_is_refused_untouched(tmp_path):
    path = tmp_path / "shop.db"
    conn = _raw(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
    conn.close()
    content = path.read_bytes()
    with pytest.raises(cairn.StoreError, match="not a Cairn store") as error:
        open_store(_url(path))
    assert str(path) in str(error.value)
    assert "customers" in str(error.value)
    assert path.read_bytes() == content
    columns, _ = _schema(path)
    assert list(columns) == ["customers"]


def test_a_store_from_a_newer_cairn_is_refused_untouched(tmp_path):
    path = tmp_path / "cairn.db"
    open_store(_url(path)).close()
    conn = _raw(path)
    conn.execute(
        "UPDATE cairn_meta SET value = ? WHERE key = 'schema_version'",
        (str(SCHEMA_VERSION + 1),),
    )
    conn.close()
    with pytest.raises(cairn.StoreError, match="newer") as error:
        open_store(_url(path))
    assert str(SCHEMA_VERSION + 1) in str(error.value)
    conn = _raw(path)
    version = conn.execute(
        "SELECT value FROM cairn_meta WHERE key = 'schema_version'"
    ).fetchone()[0]
    conn.close()
    assert version == str(SCHEMA_VERSION + 1)


def test_a_directory_is_refused(tmp_path):
    with pytest.raises(cairn.StoreError, match="directory"):
        open_store(_url(tmp_path))


# -- locks -------------------------------------------------------------------------------------
def test_opening_a_new_store_locked_by_another_connection_fails_fast(
    tmp_path, short_busy_timeout
):
    path = tmp_path / "cairn.db"
    holder = _raw(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(cairn.StoreError, match="locked") as error:
            open_store(_url(path))
        assert time.monotonic() - started < 10
        assert str(path) in str(error.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Usable once the lock is gone.
    open_store(_url(path)).close()


def test_a_write_to_a_store_locked_by_another_connection_fails_fast(
    tmp_path, short_busy_timeout
):
    path = tmp_path / "cairn.db"
    store = open_store(_url(path))
    _create_request(store, "before")
    holder = _raw(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        # Opening a migrated store takes no write lock, and reads still work.
        reader = open_store(_url(path))
        assert reader.get_request("before") is not None
        reader.close()
        started = time.monotonic()
        with pytest.raises(cairn.StoreError, match="locked"):
            _create_request(store, "during")
        assert time.monotonic() - started < 10
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.get_request("during") is None
    _create_request(store, "after")
    store.close()


# -- URLs --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("sqlite://host/x.db", "sqlite:///"),
        ("sqlite:///", "names no file"),
        ("sqlite:///x.db?synchronous=bogus", "bogus"),
        ("sqlite:///x.db?foo=1", "'foo'"),
        ("sqlite:///x.db?timeout=soon", "bad timeout='soon'"),
        (
            "sqlite:///x.db?timeout=0",
            "seconds a writer waits for a lock, a number in (0",
        ),
        ("mysql://x", "mysql://x"),
        ("nothing-like-a-url", "unknown store URL"),
    ],
)
def test_bad_urls_are_refused_naming_the_problem(url, problem, tmp_path):
    with pytest.raises(cairn.StoreError) as error:
        open_store(url)
    assert problem in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_synchronous_defaults_to_full(tmp_path):
    store = open_store(_url(tmp_path / "cairn.db"))
    try:
        assert _pragma(store, "synchronous") == 2
    finally:
        store.close()


@pytest.mark.parametrize("value", ["normal", "NORMAL"])
def test_synchronous_normal_is_accepted(tmp_path, value):
    store = open_store(_url(tmp_path / "cairn.db", f"?synchronous={value}"))
    try:
        assert _pragma(store, "synchronous") == 1
        _create_request(store, "r")
    finally:
        store.close()


def test_the_store_is_in_wal_mode_with_foreign_keys(tmp_path):
    path = tmp_path / "cairn.db"
    store = open_store(_url(path))
    try:
        assert _pragma(store, "foreign_keys") == 1
    finally:
        store.close()
    conn = _raw(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_relative_urls_are_relative_to_the_working_directory(tmp_path):
    store = open_store("sqlite:///nested/dir/rel.db")
    store.close()
    assert (tmp_path / "nested" / "dir" / "rel.db").is_file()
    store = open_store("plain.db")
    store.close()
    assert (tmp_path / "plain.db").is_file()


def test_default_url_is_under_dot_cairn_unless_cairn_store_is_set(monkeypatch):
    assert open_store is not None
    from cairn.store import default_url

    assert default_url() == "sqlite:///.cairn/cairn.db"
    monkeypatch.setenv("CAIRN_STORE", "sqlite:///elsewhere.db")
    assert default_url() == "sqlite:///elsewhere.db"


# -- migrations --------------------------------------------------------------------------------
def test_migrations_create_the_expected_schema(tmp_path):
    path = tmp_path / "cairn.db"
    open_store(_url(path)).close()
    columns, indexes = _schema(path)
    assert columns == EXPECTED_SCHEMA
    assert indexes == EXPECTED_INDEXES
    conn = _raw(path)
    version = conn.execute(
        "SELECT value FROM cairn_meta WHERE key = 'schema_version'"
    ).fetchone()[0]
    conn.close()
    assert int(version) == SCHEMA_VERSION


def test_the_last_migration_is_the_schema_version():
    from cairn.store import _sql

    numbers = [number for number, _name, _sql_text in _sql.migrations("sqlite")]
    assert numbers == list(range(1, len(numbers) + 1))
    assert numbers[-1] == SCHEMA_VERSION


def test_a_store_made_at_schema_1_is_upgraded_with_its_data(tmp_path):
    path = tmp_path / "cairn.db"
    # A request as schema 1 wrote it: its events counted in requests.event_seq.
    write_schema_1_store(
        path,
        """
        INSERT INTO requests (id, application, status, input, event_seq, created_at_ms)
            VALUES ('old', 'app', 'running', X'7B7D', 1, 1.0);
        INSERT INTO calls (id, request_id, seq, function, kind, dispatched, status, run)
            VALUES ('old', 'old', 0, 'app', 'app', 1, 'running', 1);
        INSERT INTO events VALUES ('old', 1, 'RequestStarted', '{"n": 1}', 1.0);
        """,
    )
    store = open_store(_url(path))
    try:
        store.append_events(
            "old", [Event(kind="RequestStarted", payload={"n": 2}, created_at_ms=2.0)]
        )
        assert [(e.seq, e.payload) for e in store.list_events("old")] == [
            (1, {"n": 1}),
            (2, {"n": 2}),
        ]
        assert [c.id for c in store.list_calls("old")] == ["old"]
    finally:
        store.close()
    assert _schema(path) == (EXPECTED_SCHEMA, EXPECTED_INDEXES)


def test_schema_8_counts_events_on_from_the_last_one_stored(tmp_path):
    path = tmp_path / "cairn.db"
    # Schemas 2 to 7 numbered events from max(events.seq), leaving the counter be.
    write_schema_1_store(
        path,
        """
        INSERT INTO requests (id, application, status, input, event_seq, created_at_ms)
            VALUES ('old', 'app', 'running', X'7B7D', 0, 1.0);
        INSERT INTO events VALUES ('old', 1, 'A', '{}', 1.0), ('old', 2, 'B', '{}', 1.0),
                                  ('old', 3, 'C', '{}', 1.0);
        """,
    )
    store = open_store(_url(path))
    try:
        store.append_events("old", [Event(kind="D", payload={}, created_at_ms=2.0)])
        assert [(e.seq, e.kind) for e in store.list_events("old")] == [
            (1, "A"),
            (2, "B"),
            (3, "C"),
            (4, "D"),
        ]
    finally:
        store.close()


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path):
    path = tmp_path / "cairn.db"
    store = open_store(_url(path))
    _create_request(store, "kept")
    store.close()
    before = _schema(path)
    again = open_store(_url(path))
    try:
        assert again.get_request("kept") is not None
        assert _schema(path) == before
        conn = _raw(path)
        rows = conn.execute("SELECT key, value FROM cairn_meta ORDER BY key").fetchall()
        conn.close()
        assert rows == [("schema_version", str(SCHEMA_VERSION))]
    finally:
        again.close()


def test_an_empty_file_is_migrated(tmp_path):
    path = tmp_path / "cairn.db"
    path.write_bytes(b"")
    open_store(_url(path)).close()
    columns, _ = _schema(path)
    assert columns == EXPECTED_SCHEMA


def test_concurrent_first_opens_migrate_once(tmp_path):
    path = tmp_path / "cairn.db"
    first = open_store(_url(path))
    second = open_store(_url(path))
    try:
        _create_request(first, "one")
        assert second.get_request("one") is not None
    finally:
        first.close()
        second.close()
    columns, _ = _schema(path)
    assert columns == EXPECTED_SCHEMA


def _open_at_once(url: str, barrier: Any, outcomes: Any) -> None:
    from cairn.store import open_store

    barrier.wait()
    try:
        open_store(url).close()
        outcomes.put("ok")
    except Exception as error:
        outcomes.put(repr(error))


def test_processes_opening_a_new_file_at_once_all_open_it(tmp_path: Path):
    # Two openers putting a new file in WAL mode at the same instant deadlock in
    # SQLite, which answers one of them "database is locked" without waiting
    # (CI saw two `cairn run` on a new store fail so); rare, hence many tries.
    context = multiprocessing.get_context("fork")
    failures = []
    for trial in range(100):
        url = f"sqlite:///{tmp_path / f'new-{trial}.db'}"
        barrier, outcomes = context.Barrier(4), context.Queue()
        openers = [
            context.Process(target=_open_at_once, args=(url, barrier, outcomes))
            for _ in range(4)
        ]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(timeout=60)
        failures += [o for o in (outcomes.get(timeout=5) for _ in openers) if o != "ok"]
    assert failures == []
