"""The dashboard in a real browser: Debian's Chromium, headless, driven by playwright.

No browser is downloaded: the tests use the system's ``chromium`` (``make test``
installs it when it is missing) and fail, never skip, without it. Screenshots go
to the test's directory, or to ``$CAIRN_SCREENSHOTS`` (``make screenshots``
writes the README's pictures to ``docs/images``).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.dashboard.apps import EVIL
from tests.dashboard.browser import (
    Held,
    act,
    calls_made,
    invoke_from_form,
    requests_of,
)
from tests.dashboard.support import KEY, finished, reached
from tests.server.support import Server, invoke_kwargs


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


def _watch_bar(page: Page, request_id: str, shot: Path) -> list[str]:
    """The widths the request's bar took on the requests page while it moved."""
    widths: list[str] = []
    deadline = time.monotonic() + 20
    while len(set(widths)) < 4 and time.monotonic() < deadline:
        width = _bar_width(page, request_id)
        if width and (not widths or widths[-1] != width):
            widths.append(width)
        if len(widths) == 3:
            page.screenshot(path=str(shot), full_page=True)
        page.wait_for_timeout(60)
    return widths


def test_invoke_watch_open_fail_and_replay(
    page: Page, dash: Server, shots: Path
) -> None:
    _history(dash)
    urls = requests_of(page)
    marker = dash.dir / "browser-k.broken"
    marker.touch()
    # The requests page; a request started from its form shows up with a live bar.
    page.goto(f"{dash.url}/ui")
    expect(page.locator("#live-state")).to_be_visible()
    request_id = invoke_from_form(
        page, "dash_pipeline", key='"browser-k"', steps="12", interval_s="0.15"
    )
    row = page.locator(f"#r-{request_id}")
    row.wait_for()
    watching = len(urls)
    widths = _watch_bar(page, request_id, shots / "dashboard_requests.png")
    assert len(set(widths)) >= 3, widths  # the bar moved at least twice
    assert [float(w.rstrip("%")) for w in widths] == sorted(
        float(w.rstrip("%")) for w in widths
    )
    # ...over the page's one event stream: no request at all while it moved.
    assert calls_made(urls[watching:]) == [], urls[watching:]
    streams = [u for u in calls_made(urls) if "/ui/stream?" in u]
    assert len(streams) == 1, urls
    # Open it while it runs: the page follows the run until its second step fails.
    row.locator("a.mono").click()
    main = page.locator("#request-head")
    expect(main).to_have_attribute("data-status", "failed")
    expect(page.locator("#request-error")).to_contain_text(
        "publishing browser-k failed: the sink is down"
    )
    expect(page.locator("#request-error .traceback")).to_contain_text(
        "Traceback (most recent call last)"
    )
    page.locator(
        "tr.row.call.s-failed button[data-details]", has_text="dash_publish"
    ).click()
    details = page.locator("tr.details-row")
    expect(details).to_contain_text("ConnectionError")
    expect(details).to_contain_text("No output: the call failed.")
    page.screenshot(path=str(shots / "dashboard_failed.png"), full_page=True)
    # Replay: the run follows live to its success; the fetch is not run again.
    marker.unlink()
    act(page, '[data-action="replay"]')
    expect(page.locator("#action-message")).to_have_text("Run 2 succeeded.")
    expect(main).to_have_attribute("data-status", "succeeded")
    expect(main).to_have_attribute("data-run", "2")
    expect(page.locator("#request-output")).to_contain_text(
        "published fetched browser-k"
    )
    fetch = page.locator("tr.row.call", has_text="dash_fetch")
    expect(fetch.locator(".tag.checkpoint")).to_be_visible()
    # The details opened before the replay are opened again after the refresh.
    expect(page.locator("tr.details-row")).to_contain_text("published fetched")
    page.screenshot(path=str(shots / "dashboard_request.png"), full_page=True)
    # Replay from the opened call: it runs again, the call before it does not.
    act(page, "tr.details-row [data-replay-from]")
    expect(main).to_have_attribute("data-run", "3")
    expect(main).to_have_attribute("data-status", "succeeded")
    expect(page.locator("tr.details-row")).to_contain_text("ran in the latest run")
    expect(fetch.locator(".tag.checkpoint")).to_be_visible()
    # Nothing was fetched from another host (no CDN).
    assert all(url.startswith(f"{dash.url}/") for _, url in urls), urls


# Records every value a progress bar of the page takes (set by its script).
_RECORD_BARS = """
window.__bars = [];
new MutationObserver(function (changes) {
  changes.forEach(function (change) {
    window.__bars.push(Number(change.target.getAttribute("aria-valuenow")));
  });
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["aria-valuenow"]});
"""


def test_follow_then_cancel_from_the_request_page(page: Page, dash: Server) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_ticker", count=300, interval_s=0.1)
        reached(client, request_id, 10)
    urls = requests_of(page)
    page.add_init_script(_RECORD_BARS)
    loaded = page.goto(f"{dash.url}/ui/requests/{request_id}")
    assert loaded is not None
    served = re.search(
        r'id="request-progress">\s*<div class="progress" [^>]*aria-valuenow="([0-9.]+)"',
        loaded.text(),
    )
    assert served is not None
    rendered = float(served[1])  # as the server rendered it
    assert rendered >= 10 / 300 * 100 - 0.1
    expect(page.locator("#request-head")).to_have_attribute("data-status", "running")
    bar = page.locator("#request-progress .progress")
    for _ in range(3):
        _moved(bar)
    # The bar moved forwards only, over the request's one progress stream: no
    # fetch, no reload of what the page showed, no step of history replayed.
    moves = page.evaluate("window.__bars")
    assert moves and moves == sorted(moves) and moves[0] > rendered, moves
    calls = calls_made(urls)
    assert len(calls) == 1 and calls[0].endswith(f"/{request_id}/progress"), urls
    act(page, '[data-action="cancel"]')
    expect(page.locator("#request-head")).to_have_attribute("data-status", "cancelled")
    expect(page.locator('[data-action="cancel"]')).to_be_disabled()
    expect(page.locator('[data-action="replay"]')).to_be_enabled()


def test_map_group_folds_and_pages(page: Page, dash: Server, shots: Path) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_mixed", n=140)
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    expect(page.locator("#request-head")).to_have_attribute("data-status", "succeeded")
    group = page.locator("tr.row.group")
    expect(group).to_contain_text("140 items")
    group.locator("[data-toggle]").click()
    items = page.locator("tr.row.call", has_text="dash_square[")
    expect(items).to_have_count(100)
    page.locator("[data-more]", has_text="40 not shown").last.click()
    expect(items).to_have_count(140)
    # A replay re-renders the tree live: the group stays open, all its pages.
    act(page, '[data-action="replay"]')
    expect(page.locator("#action-message")).to_have_text("Run 2 succeeded.")
    expect(items).to_have_count(140)
    expect(items.last).to_be_visible()
    group.locator("[data-toggle]").click()
    expect(items.first).to_be_hidden()
    page.locator("tr.row.call", has_text="dash_read").locator("[data-details]").click()
    expect(page.locator("tr.details-row")).to_contain_text("Reading")


@pytest.mark.parametrize("answered", ["as_before_the_action", "as_after_the_action"])
def test_an_action_reports_its_own_run_not_one_a_fetch_in_flight_showed(
    page: Page, dash: Server, answered: str
) -> None:
    """An update still out when an action is taken (here, the one opening a call
    just before) may answer for the page before the action (the message waits
    for an update asked after it) or after it, the new run still going (the
    message waits for its end)."""
    fetches = Held(page, r"/ui/requests/[^/]+/view\?")  # the page's updates
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_ticker", count=20, interval_s=0.1)
        reached(client, request_id, 1)
        page.goto(f"{dash.url}/ui/requests/{request_id}")
        expect(page.locator("#request-head")).to_have_attribute(
            "data-status", "running"
        )
        fetches.wait(1)  # the update its end asks for
        finished(client, request_id)
        fetches.routes[0].continue_()
        expect(page.locator("#request-head")).to_have_attribute("data-finished", "1")
        page.locator("button[data-details]", has_text="dash_ticker").click()
        fetches.wait(2)  # opening the call: held, still out
        as_of_run_1 = client.get(fetches.routes[1].request.url).text
        with page.expect_response(re.compile(r"/replay$")):
            act(page, '[data-action="replay"]')
        if answered == "as_after_the_action":
            answer = client.get(fetches.routes[1].request.url).text
            update = json.loads(answer)
            assert update["run"] == 2 and not update["finished"]
        else:
            answer = as_of_run_1
        fetches.stop()
        fetches.routes[1].fulfill(
            status=200, content_type="application/json", body=answer
        )
        expect(page.locator("#action-message")).to_have_text("Run 2 succeeded.")
        assert finished(client, request_id)["run"] == 2


def test_an_action_reports_a_run_a_live_refresh_saw_end(
    page: Page, dash: Server
) -> None:
    """A refresh an event of the new run asked for may be the first to read the
    run finished; it closes the stream, so no RequestFinished follows, and the
    message still reports the end."""
    streams = Held(page, r"/requests/[^/]+/progress$")
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_ticker", count=20, interval_s=0.1)
        finished(client, request_id)
        page.goto(f"{dash.url}/ui/requests/{request_id}")
        main = page.locator("#request-head")
        expect(main).to_have_attribute("data-finished", "1")
        act(page, '[data-action="replay"]')
        expect(main).to_have_attribute("data-run", "2")
        expect(main).to_have_attribute("data-finished", "0")
        seq = page.locator("#request-main").get_attribute("data-seq")
        streams.wait(1)
        finished(client, request_id)
        # What the stream would have sent, but for its last event.
        sent = client.get(
            f"/applications/dash_ticker/requests/{request_id}/progress",
            headers={"Last-Event-ID": str(seq)},
        ).text
        frames = [frame for frame in sent.split("\n\n") if frame.startswith("id:")]
        assert "RequestFinished" in frames[-1], frames
        kinds = {re.search(r'data: \{"(\w+)"', frame)[1] for frame in frames[:-1]}
        assert kinds - {"RequestProgressUpdated"}, kinds  # some ask for a refresh
        body = "retry: 3600000\n\n" + "\n\n".join(frames[:-1]) + "\n\n"
        streams.routes[0].fulfill(
            status=200, content_type="text/event-stream", body=body
        )
        expect(page.locator("#action-message")).to_have_text("Run 2 succeeded.")
        assert len(streams.routes) == 1  # the render that saw the end closed the stream


def test_ten_thousand_item_map_in_the_browser(
    page: Page, dash: Server, big_map: str
) -> None:
    with dash.client() as client:
        assert finished(client, big_map, timeout_s=90)["status"] == "succeeded"
    started = time.monotonic()
    page.goto(f"{dash.url}/ui/requests/{big_map}")
    group = page.locator("tr.row.group")
    expect(group).to_contain_text("10,000 items")
    expect(group).to_contain_text("10,000 succeeded")
    assert time.monotonic() - started < 5.0
    items = page.locator("tr.row.call", has_text="dash_square[")
    expect(items).to_have_count(0)  # folded: the page holds a handful of rows
    assert page.locator("#tree tbody tr").count() < 10
    # Unfolded a page at a time: 100 items, then 100 more on "Show more".
    group.locator("[data-toggle]").click()
    expect(items).to_have_count(100)
    page.locator("[data-more]", has_text="9,900 not shown").click()
    expect(items).to_have_count(200)
    expect(page.locator("[data-more]", has_text="9,800 not shown")).to_be_visible()
    assert page.locator("#tree tbody tr").count() < 220
    # Folding hides them without a reload; unfolding shows the same rows again.
    group.locator("[data-toggle]").click()
    expect(items.first).to_be_hidden()
    expect(page.locator("[data-more]")).to_be_hidden()
    group.locator("[data-toggle]").click()
    expect(items.nth(199)).to_be_visible()
    expect(items).to_have_count(200)
    items.nth(150).locator("[data-details]").click()
    expect(page.locator("tr.details-row")).to_contain_text("22500")  # 150 squared


def test_filters_and_pages_in_the_browser(page: Page, dash: Server) -> None:
    with dash.client() as client:
        made = [invoke_kwargs(client, "dash_add", a=i) for i in range(5)]
        failed = invoke_kwargs(client, "dash_evil", fail=True)
        for request_id in [*made, failed]:
            finished(client, request_id)
    rows = page.locator("#requests tbody tr[data-status]")

    def column(index: int) -> list[str]:
        return [row.locator("td").nth(index).inner_text().strip() for row in rows.all()]

    page.goto(f"{dash.url}/ui")
    page.select_option("#filters select[name=application]", "dash_add")
    expect(page).to_have_url(re.compile(r"application=dash_add"))
    expect(rows.first).to_be_visible()
    assert set(column(1)) == {"dash_add"}
    page.select_option("#filters select[name=status]", "failed")
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("#requests tr.empty")).to_contain_text("match these filters")
    page.select_option("#filters select[name=application]", "")
    expect(rows.first).to_be_visible()
    assert set(column(2)) == {"failed"} and failed in page.content()
    # Pages of 2, newest first, linked by "Older" and "Newest".
    page.goto(f"{dash.url}/ui?application=dash_add&limit=2")
    expect(rows).to_have_count(2)
    first = [row.get_attribute("data-id") for row in rows.all()]
    assert first == [made[4], made[3]]
    page.click("#older")
    expect(rows).to_have_count(2)
    assert [row.get_attribute("data-id") for row in rows.all()] == [made[2], made[1]]
    page.click("text=« Newest")
    expect(rows.first).to_have_attribute("data-id", made[4])


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


def _moved(bar: Locator) -> None:
    """Wait until a progress bar changed: updated by the page's script."""
    before = bar.get_attribute("aria-valuenow") or ""
    expect(bar).not_to_have_attribute("aria-valuenow", before)


def test_script_in_a_progress_message_does_not_run(page: Page, dash: Server) -> None:
    page.goto(f"{dash.url}/ui")
    expect(page.locator("#live-state")).to_be_visible()
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_evil", fail=True, hold_s=4.0)
    row = page.locator(f"#r-{request_id}")
    # Shown live, as text, by the stream's progress updates (set by the script,
    # not the row the server rendered)...
    _moved(row.locator(".progress"))
    message = row.locator(".progress-text .message")
    expect(message).to_have_text(EVIL)
    assert message.locator("*").count() == 0
    # ...by the request page's own progress stream while it runs...
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    live = page.locator("#request-progress")
    _moved(live.locator(".progress"))
    expect(live.locator(".message")).to_have_text(EVIL)
    assert live.locator(".message *").count() == 0
    # ...and once it failed: the error, the progress log, the call's values.
    expect(page.locator("#request-head")).to_have_attribute("data-status", "failed")
    expect(page.locator("#request-error")).to_contain_text(EVIL)
    expect(page.locator("table.log .message").last).to_have_text(EVIL)
    page.locator("button[data-details]", has_text="dash_echo_evil").click()
    expect(page.locator("tr.details-row")).to_contain_text(EVIL)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("#request-main script").count() == 0


def test_login_in_the_browser(page: Page, dash_secured: Server) -> None:
    urls = requests_of(page)
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
    request_id = invoke_from_form(page, "dash_add", a="40", b="2")
    page.click("#invoke-ok a")
    expect(page.locator("#request-head")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#request-output")).to_contain_text("42")
    assert request_id in page.url
    assert "cairn_session" not in page.evaluate("document.cookie")
    assert not any(KEY in url for _, url in urls)
    page.click("form.logout button")
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(f"{dash_secured.url}/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
