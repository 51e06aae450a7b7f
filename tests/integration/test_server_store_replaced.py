"""A ``cairn serve`` whose SQLite store file is deleted under it follows its
embedded worker onto the store at the URL: the API answers for the requests the
worker runs, and no longer lists the deleted ones; event streams are woken by
commits to the new file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cairn.server import _stores
from cairn.store import open_store
from tests.server.support import invoke, launch, wait_for

APP = """
from __future__ import annotations

from cairn import application, function


@application()
@function()
def replaced_echo(n: int) -> int:
    return n + 1
"""


def test_the_api_follows_the_worker_onto_a_new_store_file(tmp_path: Path) -> None:
    app = tmp_path / "replaced_app.py"
    app.write_text(APP)
    db = tmp_path / "server" / "s.db"
    server = launch(tmp_path / "server", apps=app, store_url=f"sqlite:///{db}")
    try:
        with server.client() as http:

            def path(request_id: str) -> str:
                return f"/applications/replaced_echo/requests/{request_id}"

            def status(request_id: str) -> str:
                answer = http.get(path(request_id))
                assert answer.status_code == 200, answer.text
                return str(answer.json()["status"])

            def listed() -> set[str]:
                answer = http.get("/applications/replaced_echo/requests")
                assert answer.status_code == 200, answer.text
                return {item["id"] for item in answer.json()["requests"]}

            old = invoke(http, "replaced_echo", 1)
            wait_for(lambda: status(old) == "succeeded")
            assert listed() == {old}
            for name in ("s.db", "s.db-wal", "s.db-shm"):
                (db.parent / name).unlink(missing_ok=True)
            wait_for(lambda: "restarting on it" in server.logs())

            new = invoke(http, "replaced_echo", 2)
            wait_for(lambda: status(new) == "succeeded")  # 200 all along, never 404
            assert http.get(f"{path(new)}/output").json() == 3
            assert listed() == {new}
            gone = http.get(path(old))
            assert gone.status_code == 404
            assert gone.json()["error"]["code"] == "request_not_found"
    finally:
        server.stop()


async def test_the_change_watcher_follows_a_new_store_file(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    open_store(url).close()
    watcher = _stores.ChangeWatcher(url)
    watcher.subscribe()
    try:
        await asyncio.wait_for(watcher.snapshot().wait(), 5)  # its first look
        for name in ("s.db", "s.db-wal", "s.db-shm"):
            (tmp_path / name).unlink(missing_ok=True)
        changed = watcher.snapshot()
        store = open_store(url)  # a new file, as the worker makes
        try:
            store.heartbeat("w", "host", 1, 0.0)  # a commit to it
        finally:
            store.close()
        await asyncio.wait_for(changed.wait(), 5)
    finally:
        watcher.unsubscribe()
        await watcher.close()
