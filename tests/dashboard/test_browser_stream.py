"""The request page's live pane of streamed output, in headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.dashboard.browser import axe, serious
from tests.server.support import Server, invoke, launch, wait_for

APP = Path(__file__).parents[1] / "observability" / "streaming_app.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = launch(tmp_path_factory.mktemp("stream-pane"), apps=APP, concurrency=2)
    yield running
    running.stop()


def test_the_pane_grows_live_while_the_request_runs(server, page):
    with server.client() as http:
        request_id = invoke(http, "stream_slowly", 12)
        wait_for(
            lambda: http.get(f"/requests/{request_id}").json()["status"] == "running"
        )
    page.goto(f"{server.url}/ui/requests/{request_id}")
    pane = page.locator("#stream-pane")
    text = page.locator("#stream-text")
    expect(pane).to_be_visible()
    expect(text).to_contain_text("tick 1")
    # Still running: later ticks arrive without a reload.
    assert "tick 11" not in text.inner_text()
    expect(text).to_contain_text("tick 11")
    expect(page.locator("#stream-state")).to_have_text("12 chunks")
    assert re.fullmatch(r"(tick \d+)+", text.inner_text()) is not None


def test_a_finished_request_shows_everything_streamed_and_no_pane_without(server, page):
    with server.client() as http:
        request_id = invoke(http, "stream_slowly", 2)
        wait_for(
            lambda: http.get(f"/requests/{request_id}").json()["status"] == "succeeded"
        )
        quiet = invoke(http, "stream_bad", "set")  # streams nothing
        wait_for(lambda: http.get(f"/requests/{quiet}").json()["status"] == "succeeded")
    page.goto(f"{server.url}/ui/requests/{request_id}")
    expect(page.locator("#stream-text")).to_have_text("tick 0tick 1")
    assert serious(axe(page)) == []  # the pane and its text, shown
    page.goto(f"{server.url}/ui")
    expect(page.locator("#app-stats")).to_contain_text("stream_slowly")
    assert serious(axe(page)) == []  # the per-application figures
    page.goto(f"{server.url}/ui/requests/{quiet}")
    page.wait_for_timeout(500)
    expect(page.locator("#stream-pane")).to_be_hidden()
