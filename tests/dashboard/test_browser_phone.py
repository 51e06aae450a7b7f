"""The dashboard on a phone (390 x 844): nothing scrolls sideways, tables become
stacked cards below 700 px, an opened call keeps its columns readable, and every
tap target is at least 24 x 24 px (at 390 px the requests page scrolled sideways
to ~1,000 px, the call tree's columns overlapped, an opened call was 1,700 px tall
with a 67 px error column, and 96 targets were smaller)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.dashboard.support import finished
from tests.server.support import Server, invoke_kwargs

# What sticks out of the window, and the tap targets under 24 x 24 px.
_PROBLEMS = """() => {
  const width = document.documentElement.clientWidth;
  const visible = el => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return box.width > 0 && box.height > 0 && style.visibility !== "hidden";
  };
  const name = el => el.tagName.toLowerCase() + (el.className ? "." + String(el.className).split(" ")[0] : "")
    + " " + (el.textContent || "").trim().slice(0, 30);
  const wide = Array.from(document.querySelectorAll("body *")).filter(el => {
    if (!visible(el) || el.closest(".track")) return false;
    const box = el.getBoundingClientRect();
    // Inside a box that scrolls by itself (a code block) is fine.
    for (let up = el.parentElement; up; up = up.parentElement) {
      const overflow = getComputedStyle(up).overflowX;
      if (overflow === "auto" || overflow === "scroll" || overflow === "hidden") {
        if (up.getBoundingClientRect().right <= width + 1) return false;
      }
    }
    return box.right > width + 1 || box.left < -1;
  }).map(name);
  const targets = "a[href], button, select, input, textarea, summary, [tabindex]";
  const small = Array.from(document.querySelectorAll(targets)).filter(el => {
    if (!visible(el) || el.closest("[hidden], .hidden, .sr-only")) return false;
    const box = el.getBoundingClientRect();
    return box.width < 24 || box.height < 24;
  }).map(el => name(el) + " " + Math.round(el.getBoundingClientRect().width) + "x"
    + Math.round(el.getBoundingClientRect().height));
  return {scroll: document.documentElement.scrollWidth, width: width, wide: wide, small: small};
}"""


def _check(page: Page, where: str) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate(_PROBLEMS)
    assert found["scroll"] <= found["width"], (where, found)
    assert not found["wide"], (where, found["wide"][:20])
    assert not found["small"], (where, found["small"][:20])
    return found


def _display(page: Page, selector: str) -> str:
    return str(
        page.locator(selector).first.evaluate("el => getComputedStyle(el).display")
    )


def test_the_dashboard_on_a_phone(phone: Page, dash: Server, shots: Path) -> None:
    marker = dash.dir / "phone-k.broken"
    marker.touch()
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_pipeline", key="phone-k", steps=3)
        mixed = invoke_kwargs(client, "dash_mixed", n=12)
        for made in (request_id, mixed):
            finished(client, made)
    marker.unlink()
    phone.goto(f"{dash.url}/ui")
    expect(phone.locator("#requests tbody tr").first).to_be_visible()
    _check(phone, "requests page")
    assert _display(phone, "#requests tbody tr[data-status]") != "table-row"  # a card
    phone.screenshot(path=str(shots / "dashboard_phone_requests.png"))
    # A failed request, its failed call opened.
    phone.goto(f"{dash.url}/ui/requests/{request_id}")
    phone.locator("button[data-details]", has_text="dash_publish").click()
    details = phone.locator("tr.details-row")
    expect(details).to_contain_text("ConnectionError")
    _check(phone, "request page, a call opened")
    assert _display(phone, "#tree tbody tr.row") != "table-row"
    error = details.locator("td.attempt-error").first
    assert error.evaluate("el => el.getBoundingClientRect().width") >= 200
    height = details.evaluate("el => el.getBoundingClientRect().height")
    assert height < 1400, height
    details.scroll_into_view_if_needed()
    phone.screenshot(path=str(shots / "dashboard_phone_request.png"))
    # A tree with a map, unfolded.
    phone.goto(f"{dash.url}/ui/requests/{mixed}")
    phone.locator("tr.row.group [data-toggle]").click()
    expect(phone.locator("tr.row.call", has_text="dash_square[")).to_have_count(12)
    _check(phone, "a map unfolded")
