"""The dashboard in a real browser: Debian's Chromium, headless, driven by playwright.

No browser is downloaded: the tests use the system's ``chromium`` (``make test``
installs it when it is missing) and fail, never skip, without it. Screenshots go
to the test's directory, or to ``$CAIRN_SCREENSHOTS`` (``make screenshots``
writes the README's pictures to ``docs/images``).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.dashboard.apps import EVIL
from tests.dashboard.support import KEY, finished
from tests.server.support import Server, invoke_kwargs

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_WAIT_MS = 30_000


def chromium() -> str:
    """The system Chromium; the test fails (not skips) without it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        pytest.fail(
            "Chromium is not installed: the dashboard's browser tests drive the "
            "system's headless Chromium. Install it with `make chromium` (Debian: "
            "apt-get install chromium); `make test` does so when it is missing.",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module's tests."""
    path = chromium()
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page; fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    expect.set_options(timeout=_WAIT_MS)
    yield opened
    context.close()
    assert not errors, errors


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go."""
    target = os.environ.get("CAIRN_SCREENSHOTS")
    if not target:
        return tmp_path
    folder = Path(__file__).parents[2] / target  # relative to the checkout
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _invoke_from_form(page: Page, app: str, **inputs: str) -> str:
    page.click(f'button[data-invoke="{app}"]')
    for name, text in inputs.items():
        page.fill(f'fieldset[data-app="{app}"] textarea[name="{name}"]', text)
    page.click("#invoke-form button[type=submit]")
    link = page.locator("#invoke-ok a")
    link.wait_for()
    return link.inner_text()


def _bar_width(page: Page, request_id: str) -> Any:
    return page.evaluate(
        """id => {
            const fill = document.querySelector('#r-' + id + ' .progress .fill');
            return fill ? fill.style.width : null;
        }""",
        request_id,
    )


def _history(dash: Server) -> None:
    """A few finished requests, so that the requests page has some history."""
    marker = dash.dir / "history.broken"
    marker.touch()
    with dash.client() as client:
        made = [
            invoke_kwargs(client, "dash_mixed", n=8),
            invoke_kwargs(client, "dash_pipeline", key="history"),
            invoke_kwargs(client, "dash_fanout", n=200),
            invoke_kwargs(client, "dash_add", a=1, b=2),
        ]
        for request_id in made:
            finished(client, request_id)
    marker.unlink()


def test_invoke_watch_open_fail_and_replay(
    page: Page, dash: Server, shots: Path
) -> None:
    _history(dash)
    # The requests page; a request started from its form shows up with a live bar.
    page.goto(f"{dash.url}/ui")
    expect(page.locator("#live-state")).to_be_visible()
    request_id = _invoke_from_form(page, "dash_ticker", count="30", interval_s="0.1")
    row = page.locator(f"#r-{request_id}")
    row.wait_for()
    widths: list[str] = []
    deadline = time.monotonic() + 20
    while len(set(widths)) < 4 and time.monotonic() < deadline:
        width = _bar_width(page, request_id)
        if width and (not widths or widths[-1] != width):
            widths.append(width)
        if len(widths) == 3:
            page.screenshot(path=str(shots / "dashboard_requests.png"), full_page=True)
        page.wait_for_timeout(60)
    assert len(set(widths)) >= 3, widths  # the bar moved at least twice
    assert [float(w.rstrip("%")) for w in widths] == sorted(
        float(w.rstrip("%")) for w in widths
    )
    # Open it: the page follows the run until it succeeds.
    row.locator("a.mono").click()
    main = page.locator("#request-main")
    expect(main).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#request-output")).to_contain_text("30")

    # A request whose second step fails: its error on the page, then a replay.
    marker = dash.dir / "browser-k.broken"
    marker.touch()
    page.goto(f"{dash.url}/ui")
    _invoke_from_form(page, "dash_pipeline", key='"browser-k"')
    page.click("#invoke-ok a")
    expect(page.locator("#request-main")).to_have_attribute("data-status", "failed")
    expect(page.locator("#request-error")).to_contain_text(
        "publishing browser-k failed: the sink is down"
    )
    page.locator(
        "tr.row.call.s-failed button[data-details]", has_text="dash_publish"
    ).click()
    details = page.locator("tr.details-row")
    expect(details).to_contain_text("ConnectionError")
    expect(details).to_contain_text("No output: the call failed.")
    page.screenshot(path=str(shots / "dashboard_failed.png"), full_page=True)
    marker.unlink()
    page.click('[data-action="replay"]')
    expect(page.locator("#action-message")).to_have_text("Run 2 succeeded.")
    expect(page.locator("#request-main")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#request-main")).to_have_attribute("data-run", "2")
    expect(page.locator("#request-output")).to_contain_text(
        "published fetched browser-k"
    )
    fetch = page.locator("tr.row.call", has_text="dash_fetch")
    expect(fetch.locator(".tag.checkpoint")).to_be_visible()
    # The details opened before the replay are opened again after the refresh.
    expect(page.locator("tr.details-row")).to_contain_text("published fetched")
    page.screenshot(path=str(shots / "dashboard_request.png"), full_page=True)
    # Replay from the opened call: it runs again, the call before it does not.
    page.click("tr.details-row [data-replay-from]")
    expect(page.locator("#request-main")).to_have_attribute("data-run", "3")
    expect(page.locator("#request-main")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("tr.details-row")).to_contain_text("ran in the latest run")
    expect(fetch.locator(".tag.checkpoint")).to_be_visible()


def test_cancel_from_the_request_page(page: Page, dash: Server) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_ticker", count=300, interval_s=0.1)
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    expect(page.locator("#request-main")).to_have_attribute("data-status", "running")
    expect(page.locator("#request-progress .progress")).to_be_visible()
    page.click('[data-action="cancel"]')
    expect(page.locator("#request-main")).to_have_attribute("data-status", "cancelled")
    expect(page.locator('[data-action="cancel"]')).to_be_disabled()
    expect(page.locator('[data-action="replay"]')).to_be_enabled()


def test_map_group_folds_and_pages(page: Page, dash: Server, shots: Path) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_mixed", n=140)
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    expect(page.locator("#request-main")).to_have_attribute("data-status", "succeeded")
    group = page.locator("tr.row.group")
    expect(group).to_contain_text("140 items")
    group.locator("[data-toggle]").click()
    items = page.locator("tr.row.call", has_text="dash_square[")
    expect(items).to_have_count(100)
    page.locator("[data-more]", has_text="40 not shown").last.click()
    expect(items).to_have_count(140)
    group.locator("[data-toggle]").click()
    expect(items.first).to_be_hidden()
    page.locator("tr.row.call", has_text="dash_read").locator("[data-details]").click()
    expect(page.locator("tr.details-row")).to_contain_text("Reading")


def test_invoke_form_shows_the_servers_validation_message(
    page: Page, dash: Server
) -> None:
    page.goto(f"{dash.url}/ui")
    page.click('button[data-invoke="dash_add"]')
    area = 'fieldset[data-app="dash_add"] textarea[name="a"]'
    page.fill(area, "{oops")
    page.click("#invoke-form button[type=submit]")
    problem = page.locator("#invoke-error")
    expect(problem).to_be_visible()
    expect(problem).to_contain_text("part 'a' is not valid JSON")
    page.fill(area, '"seven"')
    page.click("#invoke-form button[type=submit]")
    expect(problem).to_contain_text("input 'a' of application 'dash_add' is invalid")
    page.fill(area, "")
    page.click("#invoke-form button[type=submit]")
    expect(problem).to_contain_text("missing required input 'a'")
    expect(page.locator("#invoke-ok")).to_be_hidden()


def test_script_in_a_progress_message_does_not_run(page: Page, dash: Server) -> None:
    page.goto(f"{dash.url}/ui")
    expect(page.locator("#live-state")).to_be_visible()
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_evil", fail=True, hold_s=1.5)
    row = page.locator(f"#r-{request_id}")
    # Shown live, as text, by the stream's updates...
    expect(row.locator(".progress-text .message")).to_have_text(EVIL)
    expect(row).to_have_attribute("data-status", "failed")
    # ...and on the request page: the error, the progress log, the call's values.
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    expect(page.locator("#request-error")).to_contain_text(EVIL)
    page.locator("button[data-details]", has_text="dash_echo_evil").click()
    expect(page.locator("tr.details-row")).to_contain_text(EVIL)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src=x]").count() == 0


def test_login_in_the_browser(page: Page, dash_secured: Server) -> None:
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{dash_secured.url}/ui/requests/some-id")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("input[name=api_key]", "not the key")
    page.click("form button[type=submit]")
    expect(page.locator(".form-error")).to_have_text("wrong API key")
    page.fill("input[name=api_key]", KEY)
    page.click("form button[type=submit]")
    expect(page).to_have_url(f"{dash_secured.url}/ui/requests/some-id")
    expect(page.locator(".notice")).to_contain_text("No request some-id.")
    page.goto(f"{dash_secured.url}/ui")
    request_id = _invoke_from_form(page, "dash_add", a="40", b="2")
    page.click("#invoke-ok a")
    expect(page.locator("#request-main")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#request-output")).to_contain_text("42")
    assert request_id in page.url
    assert "cairn_session" not in page.evaluate("document.cookie")
    assert not any(KEY in url for url in urls)
    page.click("form.logout button")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(f"{dash_secured.url}/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
