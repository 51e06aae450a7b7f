"""Times are labelled (they were the server's local time with no zone): UTC as
served, or the reader's local time, or relative, picked in the top bar and kept;
the exact time (UTC and local, to the millisecond) on hover; a timeline bar's
hover gives its attempt, run, start, end and duration."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.support import finished
from tests.server.support import Server, invoke_kwargs


@pytest.fixture
def tokyo(browser: Browser) -> Iterator[Page]:
    """A page in Tokyo's time zone (UTC+9)."""
    context = browser.new_context(timezone_id="Asia/Tokyo")
    yield context.new_page()
    context.close()


def test_times_are_labelled_and_shown_as_the_reader_picks(
    tokyo: Page, dash: Server
) -> None:
    page = tokyo
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_retry", key="times-k")
        record = finished(client, request_id)
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    created = page.locator("#request-head dd time").first
    expect(created).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    utc_hour = int(created.inner_text()[11:13])
    assert f"{record['created_at_ms']}" == created.get_attribute("data-ms")
    # Exact on hover: UTC and local, to the millisecond.
    title = created.get_attribute("title") or ""
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} UTC \(.*\d\d\.\d{3} GMT\+9\)", title), (
        title
    )
    page.select_option("#time-mode", "local")
    expect(created).to_have_text(re.compile(r" GMT\+9$"))
    assert int(created.inner_text()[11:13]) == (utc_hour + 9) % 24
    page.select_option("#time-mode", "relative")
    expect(created).to_have_text(re.compile(r"(ago|just now)$"))
    page.reload()  # kept
    expect(page.locator("#request-head dd time").first).to_have_text(
        re.compile(r"(ago|just now)$")
    )
    # A timeline bar: its attempt, run, outcome, times and duration on hover.
    flaky = page.locator("tr.row.call", has_text="dash_flaky").locator(".seg").first
    bar = flaky.get_attribute("title") or ""
    assert re.fullmatch(
        r"attempt 1 · run 1 · failure · .+ → .+ \([0-9.]+(ms|s)\)", bar
    ), bar
    page.select_option("#time-mode", "utc")
