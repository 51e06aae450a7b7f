"""The request page says what a request waits for, and sends it a signal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.crash import wait_apps
from tests.dashboard.support import finished
from tests.server.support import Server, invoke, launch


@pytest.fixture(scope="module")
def waits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("waits")
    started = launch(
        directory,
        apps=Path(wait_apps.__file__),
        CAIRN_TEST_EFFECTS=str(directory / "effects.log"),
    )
    yield started
    started.stop()


def test_the_request_page_sends_the_signal_a_request_waits_for(
    page: Page, waits_server: Server
) -> None:
    with waits_server.client() as client:
        request_id = invoke(client, "await_signal", 5)
    page.goto(f"{waits_server.url}/ui/requests/{request_id}")
    expect(page.locator("#request-waiting")).to_contain_text("waiting: signal 'go'")
    form = page.locator("#signal-form")
    expect(form.locator("input[name=signal]")).to_have_value("go")
    form.locator("input[name=value]").fill("{oops")
    form.locator("button[type=submit]").click()
    expect(page.locator("#action-message")).to_contain_text("not JSON")
    form.locator("input[name=value]").fill("37")
    form.locator("button[type=submit]").click()
    expect(page.locator("#request-head")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#signal-form")).to_have_count(0)
    with waits_server.client() as client:
        assert finished(client, request_id)["status"] == "succeeded"
        path = f"/applications/await_signal/requests/{request_id}/output"
        assert client.get(path).json() == 42
