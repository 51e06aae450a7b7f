"""A SQLite store's WAL is checkpointed by a thread, not inside a writer's commit."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

from cairn.store import _wal, open_store


def _checkpoint_threads() -> list[threading.Thread]:
    return [
        t for t in threading.enumerate() if t.name.startswith("cairn-wal-checkpoint")
    ]


def _frames_in_wal(path: Path) -> int:
    page_size = 4096  # SQLite's default, which the store keeps
    return (os.path.getsize(f"{path}-wal") - 32) // (page_size + 24)


def test_a_writing_process_checkpoints_on_a_thread_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(f"sqlite:///{path}?synchronous=normal")
    try:
        size_before = path.stat().st_size
        assert not _checkpoint_threads()
        for i in range(_wal.CHECKPOINT_EVERY_COMMITS + 10):
            store.heartbeat(f"worker-{i:05d}-{'x' * 200}", "host", i, float(i))
        # New rows reach the database file only by a checkpoint, and the WAL holds
        # fewer pages than make the writer checkpoint in a commit.
        assert _frames_in_wal(path) < _wal.AUTOCHECKPOINT_PAGES
        deadline = time.monotonic() + 10
        while path.stat().st_size == size_before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.stat().st_size > size_before
        assert [t.name for t in _checkpoint_threads()] == ["cairn-wal-checkpoint s.db"]
        with closing(sqlite3.connect(path)) as reader:
            (workers,) = reader.execute("SELECT count(*) FROM workers").fetchone()
        assert workers == _wal.CHECKPOINT_EVERY_COMMITS + 10
    finally:
        store.close()
    assert not _checkpoint_threads()  # the last store of the file stopped it


def test_the_checkpoint_thread_stops_with_the_last_store_of_its_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    first = open_store(f"sqlite:///{path}?synchronous=normal")
    second = first.reopen()
    try:
        for i in range(_wal.CHECKPOINT_EVERY_COMMITS):
            first.heartbeat(f"worker-{i}", "host", i, float(i))
        assert len(_checkpoint_threads()) == 1
        first.close()
        assert len(_checkpoint_threads()) == 1  # the other store writes on
        second.heartbeat("one-more", "host", 1, 1.0)
    finally:
        second.close()
    assert not _checkpoint_threads()
    assert not Path(f"{path}-wal").exists()  # the last connection folded it in


def test_at_full_a_commit_checkpoints_as_sqlite_does(tmp_path: Path) -> None:
    # There every commit fsyncs the WAL: a longer WAL and a checkpoint's fsyncs
    # beside those commits cost them more than the checkpoint in the commit does.
    path = tmp_path / "s.db"
    store = open_store(f"sqlite:///{path}")
    try:
        for i in range(_wal.CHECKPOINT_EVERY_COMMITS + 10):
            store.heartbeat(f"worker-{i}", "host", i, float(i))
        assert not _checkpoint_threads()
        (pages,) = store._dialect.file.conn.execute(
            "PRAGMA wal_autocheckpoint"
        ).fetchone()
        assert pages == 1000
    finally:
        store.close()
