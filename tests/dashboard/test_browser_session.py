"""A session that expires while a page is open: the next action, or the page's
live updates, lead to the login page, which says where it goes back to, and
back (an action showed the API's raw 401 message)."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from cairn.server._dashboard import _session
from tests.dashboard.support import KEY, finished
from tests.server.support import Server, invoke_kwargs


def _log_in(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=api_key]", KEY)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui$"))


def _expire(page: Page, server: Server) -> None:
    """The session cookie, as a week-old login would have left it."""
    old = _session.token(KEY.encode(), now_s=time.time() - _session.SESSION_S - 60)
    page.context.add_cookies(
        [{"name": _session.COOKIE, "value": old, "url": server.url, "httpOnly": True}]
    )


def test_an_action_after_the_session_expired_logs_in_and_comes_back(
    page: Page, dash_secured: Server
) -> None:
    with dash_secured.client() as client:
        request_id = invoke_kwargs(client, "dash_add", a=1, b=2)
        finished(client, request_id)
    _log_in(page, dash_secured)
    target = f"/ui/requests/{request_id}#call={request_id}"
    page.goto(f"{dash_secured.url}{target}")
    expect(page.locator("#request-head")).to_have_attribute("data-status", "succeeded")
    _expire(page, dash_secured)
    page.click('[data-action="replay"]')  # asks the server what would run again
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    expect(page.locator(".notice-next")).to_contain_text(target)
    expect(page.locator(".notice-next")).to_contain_text("your session expired")
    page.fill("input[name=api_key]", KEY)
    page.click("form button[type=submit]")
    expect(page).to_have_url(f"{dash_secured.url}{target}")
    # Back where it was: the linked call opened.
    expect(page.locator("tr.details-row")).to_contain_text("dash_add")


def test_live_updates_after_the_session_expired_log_in_and_come_back(
    page: Page, dash_secured: Server
) -> None:
    _log_in(page, dash_secured)
    with dash_secured.client() as client:
        # A checkpointed call every half second: each asks the page to update.
        request_id = invoke_kwargs(client, "dash_steps", steps=60, interval_s=0.5)
        page.goto(f"{dash_secured.url}/ui/requests/{request_id}")
        expect(page.locator("tr.row.call", has_text="dash_fetch").first).to_be_visible()
        _expire(page, dash_secured)
        # The next update is refused: the login page, then back.
        expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        page.fill("input[name=api_key]", KEY)
        page.click("form button[type=submit]")
        expect(page).to_have_url(f"{dash_secured.url}/ui/requests/{request_id}")
        client.post(f"/applications/dash_steps/requests/{request_id}/cancel")
