"""The progress log keeps every message, a page at a time, each with its run (it
kept the last 20 and mixed runs); the newest page grows live while the request
runs."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from tests.dashboard.browser import act
from tests.dashboard.support import finished
from tests.server.support import Server, invoke_kwargs


def _steps(log: Locator) -> list[str]:
    return [
        cell.inner_text().split(" / ")[0]
        for cell in log.locator("tbody td[data-label=Step]").all()
    ]


def _runs(log: Locator) -> set[str]:
    return {cell.inner_text() for cell in log.locator("tbody td[data-label=Run]").all()}


def test_every_progress_message_a_page_at_a_time_with_its_run(
    page: Page, dash: Server
) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_ticker", count=120, interval_s=0.01)
        finished(client, request_id)
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    log = page.locator("#request-log")
    expect(log.locator("tbody tr")).to_have_count(50)
    assert _steps(log) == [str(n) for n in range(71, 121)]
    assert _runs(log) == {"1"}
    log.locator("[data-log]", has_text="Older").click()
    expect(log.locator("tbody tr").first).to_contain_text("21 / 120")
    assert _steps(log) == [str(n) for n in range(21, 71)]
    log.locator("[data-log]", has_text="Older").click()
    expect(log.locator("tbody tr")).to_have_count(20)
    assert _steps(log)[0] == "1"
    expect(log.locator("[data-log]", has_text="Older")).to_have_count(0)
    log.locator("[data-log]", has_text="Newest").click()
    expect(log.locator("tbody tr").last).to_contain_text("120 / 120")
    # A replay's messages are its run's.
    act(page, '[data-action="replay"]')
    expect(page.locator("#action-message")).to_have_text("Run 2 succeeded.")
    expect(log.locator("tbody tr").last).to_contain_text("120 / 120")
    assert _runs(log) == {"2"}
    log.locator("[data-log]", has_text="Older").click()
    expect(log.locator("tbody tr").first).to_contain_text("21 / 120")
    log.locator("[data-log]", has_text="Older").click()  # where the runs meet
    expect(log.locator("tbody tr").first).to_contain_text("91 / 120")
    assert _runs(log) == {"1", "2"}
    log.locator("[data-log]", has_text="Older").click()
    expect(log.locator("tbody tr").first).to_contain_text("41 / 120")
    assert _runs(log) == {"1"}


def test_the_newest_page_grows_while_the_request_runs(page: Page, dash: Server) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_ticker", count=40, interval_s=0.1)
        page.goto(f"{dash.url}/ui/requests/{request_id}")
        log = page.locator("#request-log")
        expect(log.locator("tbody tr")).not_to_have_count(0)
        before = log.locator("tbody tr").count()
        expect(page.locator("#request-head")).to_have_attribute(
            "data-status", "running"
        )
        page.wait_for_timeout(1000)
        assert log.locator("tbody tr").count() > before + 3
        finished(client, request_id)
    expect(log.locator("tbody tr").last).to_contain_text("40 / 40")
    steps = _steps(log)
    assert steps == sorted(steps, key=int) and len(steps) == len(set(steps))
