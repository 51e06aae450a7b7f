"""Accessibility, in the browser: axe-core (npm, ``make axe``) finds nothing
serious or critical on any page, light or dark, desktop or phone (it found low
contrast, unnamed progress bars and a traceback box keyboard users could not
scroll); a skip link; filters that do not submit on arrow keys;
``prefers-reduced-motion`` and ``prefers-color-scheme`` respected."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.browser import axe, serious
from tests.dashboard.support import KEY, finished
from tests.server.support import Server, invoke_kwargs


@pytest.fixture(params=["light", "dark"])
def scheme_page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    """A page preferring a light, then a dark, colour scheme."""
    context = browser.new_context(
        color_scheme=request.param, viewport={"width": 1360, "height": 900}
    )
    yield context.new_page()
    context.close()


def _requests(dash: Server) -> dict[str, str]:
    marker = dash.dir / "a11y-k.broken"
    marker.touch()
    with dash.client() as client:
        made = {
            "failed": invoke_kwargs(client, "dash_pipeline", key="a11y-k", steps=2),
            "mixed": invoke_kwargs(client, "dash_mixed", n=9),
            "running": invoke_kwargs(client, "dash_ticker", count=200, interval_s=0.1),
        }
        for name, request_id in made.items():
            if name != "running":
                finished(client, request_id)
    marker.unlink()
    return made


def _check(page: Page, where: str, report: list[str]) -> None:
    found = axe(page)
    report.extend(f"{where}: {v['impact']} {v['id']}" for v in found)
    assert not serious(found), (where, serious(found))


def test_axe_finds_nothing_serious(
    scheme_page: Page, dash: Server, shots: Path
) -> None:
    page = scheme_page
    made = _requests(dash)
    report: list[str] = []
    page.goto(f"{dash.url}/ui")
    expect(page.locator("#requests tbody tr").first).to_be_visible()
    _check(page, "requests", report)
    page.goto(f"{dash.url}/ui/requests/{made['failed']}")
    page.locator("button[data-details]", has_text="dash_publish").click()
    expect(page.locator("tr.details-row")).to_contain_text("ConnectionError")
    page.locator("tr.details-row summary", has_text="Traceback").first.click()
    _check(page, "failed request, a call opened", report)
    if page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches"):
        page.screenshot(path=str(shots / "dashboard_dark.png"))
    page.goto(f"{dash.url}/ui/requests/{made['mixed']}")
    page.locator("tr.row.group [data-toggle]").click()
    expect(page.locator("tr.row.call", has_text="dash_square[")).to_have_count(9)
    page.click('[data-action="replay"]')  # the confirmation dialog
    expect(page.locator("dialog.confirm")).to_be_visible()
    _check(page, "a map unfolded, a confirmation open", report)
    page.keyboard.press("Escape")
    page.goto(f"{dash.url}/ui/requests/{made['running']}")
    expect(page.locator("#request-progress .progress")).to_be_visible()
    _check(page, "running request", report)
    print(
        f"\naxe-core ({page.evaluate('axe.version')}), not serious:", report or "none"
    )
    with dash.client() as client:
        client.post(f"/applications/dash_ticker/requests/{made['running']}/cancel")


def test_the_login_page_and_a_phone(
    browser: Browser, phone: Page, dash: Server, dash_secured: Server
) -> None:
    context = browser.new_context()
    login = context.new_page()
    login.goto(f"{dash_secured.url}/ui/requests/x")
    expect(login).to_have_url(re.compile(r"/ui/login"))
    assert not serious(axe(login))
    login.fill("input[name=api_key]", "wrong")
    login.click("form button[type=submit]")
    expect(login.locator(".form-error")).to_be_visible()
    assert not serious(axe(login))
    context.close()
    made = _requests(dash)
    phone.goto(f"{dash.url}/ui/requests/{made['failed']}")
    phone.locator("button[data-details]", has_text="dash_publish").click()
    expect(phone.locator("tr.details-row")).to_be_visible()
    assert not serious(axe(phone))
    with dash.client() as client:
        client.post(f"/applications/dash_ticker/requests/{made['running']}/cancel")


def test_skip_link_keyboard_and_filters(page: Page, dash: Server) -> None:
    page.goto(f"{dash.url}/ui")
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # Arrow keys on a filter choose; they do not submit (the page stays).
    status = page.locator("#filters select[name=status]")
    status.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(500)
    assert "status=" not in page.url
    assert status.input_value() != ""
    page.keyboard.press("Enter")  # Enter applies it
    expect(page).to_have_url(re.compile(r"status=\w+"))
    # A mouse choice applies at once.
    page.select_option("#filters select[name=application]", "dash_add")
    expect(page).to_have_url(re.compile(r"application=dash_add"))


def _style(page: Page, selector: str, prop: str) -> Any:
    return page.locator(selector).first.evaluate(
        f"el => getComputedStyle(el).getPropertyValue({prop!r})"
    )


def test_reduced_motion_and_dark_mode(browser: Browser, dash: Server) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_ticker", count=200, interval_s=0.1)
    context = browser.new_context(reduced_motion="reduce", color_scheme="dark")
    page = context.new_page()
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    expect(page.locator("#request-progress .progress")).to_be_visible()
    assert _style(page, "#request-progress .fill", "transition-duration") == "0s"
    assert _style(page, ".seg", "animation-name") == "none"
    background = _style(page, "body", "background-color")
    red, green, blue = (int(n) for n in re.findall(r"\d+", background)[:3])
    assert red + green + blue < 150, background  # dark
    context.close()
    light = browser.new_context(color_scheme="light")
    plain = light.new_page()
    plain.goto(f"{dash.url}/ui/requests/{request_id}")
    red, green, blue = (
        int(n)
        for n in re.findall(r"\d+", _style(plain, "body", "background-color"))[:3]
    )
    assert red + green + blue > 600
    light.close()
    with dash.client() as client:
        client.post(f"/applications/dash_ticker/requests/{request_id}/cancel")
    assert KEY  # the secured server's key (used by the login test)
