"""``cairn serve`` on a PostgreSQL store: the main flows, end to end.

The rest of the server suite runs on SQLite; the API only meets the store through
the Store protocol, so these cover what differs (change wake-ups, idempotency
conflicts, paging, replay and cancel on another backend).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import cairn
from tests import postgres_server
from tests.server.support import Server, invoke, kinds, launch, sse_events


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = postgres_server.server()
    url = database.create_database(migrated=False)
    started = launch(tmp_path_factory.mktemp("pg-server"), store_url=url)
    try:
        yield started
    finally:
        started.stop()
        database.drop_database(url)


@pytest.fixture
def pg(pg_server: Server) -> Iterator[httpx.Client]:
    with pg_server.client() as client:
        yield client


def _path(app: str, request_id: str, tail: str = "") -> str:
    return f"/applications/{app}/requests/{request_id}{tail}"


def test_invoke_stream_output(pg: httpx.Client) -> None:
    request_id = invoke(pg, "srv_squares", 3)
    events = sse_events(pg, _path("srv_squares", request_id, "/progress"))
    assert kinds(events)[0] == "RequestStarted"
    assert events[-1][1]["RequestFinished"]["output"]["body"] == [0, 1, 4]
    assert pg.get(_path("srv_squares", request_id, "/output")).json() == [0, 1, 4]
    resumed = sse_events(
        pg, _path("srv_squares", request_id, "/progress"), {"Last-Event-ID": "2"}
    )
    assert resumed == events[2:]


def test_replay_and_cancel(pg_server: Server, pg: httpx.Client) -> None:
    key = f"pg{uuid.uuid4().hex[:8]}"
    (pg_server.dir / f"{key}.broken").touch()
    request = cairn.run_remote_application(
        "srv_pipeline", key, cairn_server=pg_server.url
    )
    with pytest.raises(cairn.RequestFailed):
        request.output()
    (pg_server.dir / f"{key}.broken").unlink()
    assert request.replay().output() == f"published fetched {key}"
    effects = Path(pg_server.dir / "effects.log").read_text().splitlines()
    assert effects.count(f"fetch {key}") == 1

    slow = cairn.run_remote_application("srv_slow", key, cairn_server=pg_server.url)
    stream = slow.progress()
    next(stream)
    slow.cancel()
    assert list(stream)[-1]["RequestFinished"]["outcome"] == {"failure": "cancelled"}


def test_idempotency_and_pages(pg: httpx.Client) -> None:
    key = f"pg-{uuid.uuid4().hex[:10]}"
    assert invoke(pg, "srv_greet", "x", headers={"Idempotency-Key": key}) == key
    again = pg.post(
        "/applications/srv_greet",
        content=b'"y"',
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert again.status_code == 409
    mine = [invoke(pg, "srv_add", n) for n in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = pg.get("/applications/srv_add/requests", params=params).json()
        seen += [r["id"] for r in page["requests"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert [seen.index(i) for i in mine] == sorted(
        (seen.index(i) for i in mine), reverse=True
    )


def test_delete_on_postgres(pg: httpx.Client) -> None:
    request_id = invoke(pg, "srv_greet", "z")
    sse_events(pg, _path("srv_greet", request_id, "/progress"))
    answer = pg.delete(_path("srv_greet", request_id))
    assert answer.status_code in (200, 204)
    gone = pg.get(_path("srv_greet", request_id))
    assert gone.status_code == 404
    assert gone.json()["error"]["code"]
