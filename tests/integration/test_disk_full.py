"""A full disk under a SQLite store: writes fail with ``StoreError`` (the server
answers 503 ``store_error``, never a 500), the WAL is checkpointed and truncated
once writes succeed again, and every request finishes once space is back.

The server test mounts a small tmpfs (root only). CI runs as root, so there it
must run: a missing mount fails it instead of hiding behind a skip.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cairn
from cairn.store import CallKey, NewRequest, open_store
from cairn.store.sqlite import SQLiteStore
from tests.server.support import Server, launch, wait_for

APP = """
from __future__ import annotations

import time

from cairn import application, function


@function()
def full_step(n: int) -> str:
    time.sleep(0.3)
    return "x" * 2000 + str(n)


@application()
@function()
def full_app(n: int) -> int:
    return sum(len(full_step(10 * n + i)) for i in range(5))
"""
REQUESTS = 6


def _output(n: int) -> int:
    return sum(len("x" * 2000 + str(10 * n + i)) for i in range(5))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs mounted in the test's directory."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs: {done.stderr.strip()}"
        if os.environ.get("CI") or os.geteuid() == 0:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Append to ``path`` until the disk is full."""
    with open(path, "ab", buffering=0) as filler:
        for size in (1 << 20, 1 << 12):
            chunk = b"\0" * size
            while True:
                try:
                    filler.write(chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC
                    break


def test_a_full_disk_answers_503_and_every_request_finishes(
    small_disk: Path, tmp_path: Path
) -> None:
    app = tmp_path / "full_app.py"
    app.write_text(APP)
    db = small_disk / "s.db"
    server = launch(tmp_path / "server", apps=app, store_url=f"sqlite:///{db}")
    try:
        with server.client() as http:
            invoked = [_invoke(http, n) for n in range(REQUESTS)]
            ids = [answer.json()["request_id"] for answer in invoked]
            wait_for(lambda: _status(server, ids[0]) == "running")

            during = []
            for n in range(5):
                # Filled again before each: an executor whose commit the disk
                # refused truncates the WAL, which gives space back.
                _fill(small_disk / "filler")
                during.append(_invoke(http, 100 + n))
            assert {answer.status_code for answer in during} <= {200, 503}
            refused = [answer for answer in during if answer.status_code == 503]
            assert refused, [answer.text for answer in during]
            for answer in refused:
                assert answer.json()["error"]["code"] == "store_error"
                assert "full" in answer.json()["error"]["message"]
            ids += [a.json()["request_id"] for a in during if a.status_code == 200]
            assert http.get(f"/applications/full_app/requests/{ids[0]}").is_success

            (small_disk / "filler").unlink()
            # Nothing stays running: the engine finishes every request.
            wait_for(lambda: all(_status(server, i) == "succeeded" for i in ids), 120)
            for n, request_id in enumerate(ids[:REQUESTS]):
                output = http.get(
                    f"/applications/full_app/requests/{request_id}/output"
                )
                assert output.json() == _output(n)
            after = _invoke(http, 999)
            assert after.status_code == 200, after.text
        assert "WAL was checkpointed and truncated" in server.logs()
        assert "Traceback" not in server.logs()
    finally:
        server.stop()


def _invoke(http: httpx.Client, n: int) -> httpx.Response:
    return http.post("/applications/full_app", json=n)


def _status(server: Server, request_id: str) -> str:
    with server.client() as http:
        answer = http.get(f"/applications/full_app/requests/{request_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["status"])


def _create_request(store: SQLiteStore, request_id: str, data: bytes) -> None:
    root = CallKey(
        id=request_id,
        request_id=request_id,
        parent_id=None,
        seq=0,
        function="app",
        kind="app",
        group_id=None,
        dispatched=True,
    )
    store.create_request(
        NewRequest(
            id=request_id,
            application="app",
            code_ref=None,
            input=data,
            headers={},
            created_at_ms=0.0,
        ),
        root,
        data,
    )


@pytest.mark.sqlite_only
def test_a_full_store_raises_store_error_then_truncates_its_wal(
    store_url: str,
) -> None:
    # max_page_count stands in for a full disk: SQLite answers SQLITE_FULL.
    store = open_store(store_url)
    assert isinstance(store, SQLiteStore)
    wal = Path(f"{store.path}-wal")
    reader = sqlite3.connect(store.path, isolation_level=None)
    try:
        store.heartbeat("w", "host", 1, 0.0)
        # A reader in the WAL: the checkpoint tried at the failure cannot truncate.
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM workers").fetchall()
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(cairn.StoreError, match="disk is full") as raised:
            _create_request(store, "big", b"v" * 100_000)
        assert isinstance(raised.value.__cause__, sqlite3.OperationalError)
        assert store.get_request("big") is None
        assert wal.stat().st_size > 0
        reader.execute("COMMIT")

        store._conn.execute(f"PRAGMA max_page_count = {pages * 100}")
        store.heartbeat("w", "host", 1, 1.0)  # the first write that succeeds
        assert wal.stat().st_size == 0  # checkpointed into the database, truncated
        _create_request(store, "big", b"v" * 100_000)
        assert store.get_request("big") is not None
    finally:
        reader.close()
        store.close()
