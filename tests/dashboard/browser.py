"""Helpers of the dashboard's browser tests: Debian's Chromium, headless, driven by
playwright (no browser is downloaded), and what the tests watch the page do.

The fixtures (``browser``, ``page``, ``phone``, ``shots``) are in ``conftest.py``.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 30_000


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


AXE = Path(__file__).with_name("vendor") / "axe.min.js"
# What axe-core is asked to check: WCAG 2.2 A and AA, and its best practices.
_AXE_RUN = """async () => {
  const found = await axe.run(document, {
    runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa",
                                    "wcag22aa", "best-practice"]},
    resultTypes: ["violations"],
  });
  return found.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " + n.failureSummary)}));
}"""


def axe_source() -> str:
    """axe-core's script (``make axe`` fetches it from npm); fails without it."""
    if not AXE.exists():
        pytest.fail(
            "axe-core is not installed for the dashboard's accessibility tests: "
            "run `make axe` (npm pack axe-core); `make test` does it.",
            pytrace=False,
        )
    return AXE.read_text()


def axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (the script is evaluated in
    the page, past its Content-Security-Policy, as a browser extension would)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    found: list[dict[str, Any]] = page.evaluate(_AXE_RUN)
    return found


def serious(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The serious and critical ones."""
    return [v for v in violations if v["impact"] in ("serious", "critical")]


def invoke_from_form(page: Page, app: str, **inputs: str) -> str:
    """Start a request from the requests page's invoke form; its id."""
    page.click(f'button[data-invoke="{app}"]')
    for name, text in inputs.items():
        page.fill(f'fieldset[data-app="{app}"] textarea[name="{name}"]', text)
    page.click("#invoke-form button[type=submit]")
    link = page.locator("#invoke-ok a")
    link.wait_for()
    return link.inner_text()


def act(page: Page, selector: str) -> None:
    """Click an action's button and confirm it in the dialog it opens."""
    page.click(selector)
    page.locator("dialog.confirm button[value=yes]").click()


def requests_of(page: Page) -> list[tuple[str, str]]:
    """The page's requests from now on, as (resource type, URL), filled as they go."""
    urls: list[tuple[str, str]] = []
    page.on(
        "request", lambda request: urls.append((request.resource_type, request.url))
    )
    return urls


def calls_made(urls: list[tuple[str, str]]) -> list[str]:
    """The fetches, XHRs and event streams among a page's requests."""
    return [url for kind, url in urls if kind in ("fetch", "xhr", "eventsource")]


class Held:
    """A page's requests to URLs matching `pattern`, held to be answered by hand."""

    def __init__(self, page: Page, pattern: str) -> None:
        self.page = page
        self.pattern = re.compile(pattern)
        self.routes: list[Any] = []
        self.holding = True
        page.route(self.pattern, self._hold)

    def _hold(self, route: Any) -> None:
        if self.holding:
            self.routes.append(route)
        else:
            route.continue_()

    def wait(self, count: int) -> None:
        """Until `count` requests are held."""
        deadline = time.monotonic() + 20
        while len(self.routes) < count:
            assert time.monotonic() < deadline, f"{len(self.routes)} held, not {count}"
            self.page.wait_for_timeout(20)

    def stop(self) -> None:
        """Hold no more requests (those held stay so until answered)."""
        self.holding = False
