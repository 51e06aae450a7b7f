"""Actions ask first, saying what will run again: replay, replay from a call and
cancel open a confirmation (they ran at once); keeping the request does nothing."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.support import finished, reached
from tests.server.support import Server, invoke_kwargs


def test_replay_and_cancel_say_what_runs_again_and_wait_for_a_yes(
    page: Page, dash: Server
) -> None:
    marker = dash.dir / "confirm-k.broken"
    marker.touch()
    with dash.client() as client:
        failed = invoke_kwargs(client, "dash_pipeline", key="confirm-k")
        assert finished(client, failed)["status"] == "failed"
    page.goto(f"{dash.url}/ui/requests/{failed}")
    head = page.locator("#request-head")
    dialog = page.locator("dialog.confirm")
    # The whole request: the application and its failed publish run again; the
    # fetch is served from its checkpoint.
    page.click('[data-action="replay"]')
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("dash_pipeline runs again from the top")
    expect(dialog).to_contain_text(
        "2 calls that did not succeed run again, their side effects included"
    )
    expect(dialog).to_contain_text("1 call that succeeded is served from its")
    dialog.locator("button[value=no]").click()
    expect(dialog).to_have_count(0)
    page.wait_for_timeout(500)
    expect(head).to_have_attribute("data-run", "1")
    # From the fetch: it and the publish after it run again.
    page.locator("button[data-details]", has_text="dash_fetch").click()
    page.click("tr.details-row [data-replay-from]")
    expect(dialog).to_contain_text("dash_fetch and every call started after it")
    expect(dialog).to_contain_text("3 calls, their side effects included")
    marker.unlink()
    dialog.locator("button[value=yes]").click()
    expect(page.locator("#action-message")).to_have_text("Run 2 succeeded.")
    # Cancel asks too; kept, the request goes on.
    with dash.client() as client:
        running = invoke_kwargs(client, "dash_ticker", count=100, interval_s=0.1)
        reached(client, running, 2)
    page.goto(f"{dash.url}/ui/requests/{running}")
    page.click('[data-action="cancel"]')
    expect(dialog).to_contain_text("its running calls are stopped")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    page.wait_for_timeout(500)
    expect(head).to_have_attribute("data-status", "running")
    page.click('[data-action="cancel"]')
    dialog.locator("button[value=yes]").click()
    expect(head).to_have_attribute("data-status", "cancelled")
