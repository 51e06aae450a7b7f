"""The dashboard on a PostgreSQL store: the request page read a page at a time,
its updates, runs on the timeline, the progress log, search and a bulk action.
The rest of the dashboard's tests run on SQLite; the store's reads themselves
are in the contract suite, on both."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests import postgres_server
from tests.dashboard.support import APPS, finished, rows_of, tree_html, view
from tests.server.support import Server, invoke_kwargs, launch


@pytest.fixture(scope="module")
def pg_dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = postgres_server.server()
    url = database.create_database(migrated=False)
    started = launch(tmp_path_factory.mktemp("pg-dash"), store_url=url, apps=APPS)
    try:
        yield started
    finally:
        started.stop()
        database.drop_database(url)


def test_the_dashboard_on_postgresql(pg_dash: Server) -> None:
    marker = pg_dash.dir / "pg-k.broken"
    marker.touch()
    with pg_dash.client() as client:
        mixed = invoke_kwargs(client, "dash_mixed", n=120)
        failed = invoke_kwargs(client, "dash_pipeline", key="pg-k", steps=3)
        for request_id in (mixed, failed):
            finished(client, request_id)
        marker.unlink()
        page = client.get(f"/ui/requests/{mixed}").text
        assert "120 items" in page and "dash_total.reduce" in page
        group = page.split('data-group="')[1].split('"')[0]
        items = tree_html(view(client, mixed, g=f"all.100.{group}"))
        assert items.count(">dash_square[") == 100 and "20 not shown" in items
        unlucky = tree_html(view(client, mixed, view="problems"))
        assert unlucky.count('class="row call') == 17  # dash_half's unlucky items
        # A replay: two runs on the timeline, the log's run column, a plan.
        plan = client.get(f"/ui/requests/{failed}/replay-plan").json()["lines"]
        assert "2 calls that did not succeed run again" in plan[1]
        client.post(f"/applications/dash_pipeline/requests/{failed}/replay")
        assert finished(client, failed)["status"] == "succeeded"
        replayed = client.get(f"/ui/requests/{failed}").text
        assert replayed.count('class="lane-label"') == 2
        assert '<td class="num" data-label="Run">2</td>' in replayed
        # Search and a bulk action.
        assert rows_of(client.get("/ui", params={"q": failed[:8]}).text) == [failed]
        bulk = client.post(
            "/ui/bulk",
            content=json.dumps(
                {
                    "action": "replay",
                    "query": f"?q={failed}",
                    "as_of_ms": 9e15,
                    "after": None,
                }
            ),
            headers={"Content-Type": "application/json"},
        ).json()
        assert (bulk["total"], bulk["done"], bulk["after"]) == (1, 1, None)
        assert finished(client, failed)["run"] == 3


def test_bad_input_is_a_400_on_postgresql(pg_dash: Server) -> None:
    with httpx.Client(base_url=pg_dash.url, timeout=30) as client:
        assert client.get("/ui", params={"from": "soon"}).status_code == 400
        bad = client.get("/ui/requests/x/view", params={"token": "t", "have": "x"})
        assert bad.status_code == 400
