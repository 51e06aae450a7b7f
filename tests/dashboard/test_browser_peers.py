"""What operators of Temporal, Inngest, Restate, DBOS and Hatchet expect, in the
browser: search by id or input, bulk replay and bulk cancel of what a filter
finds (counted and confirmed), a link to a call, the calls of the latest run
only, and a timeline of every run with each attempt on hover."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.dashboard.browser import act
from tests.dashboard.support import finished, reached
from tests.server.support import Server, invoke_kwargs


def test_search_then_bulk_replay_and_bulk_cancel(page: Page, dash: Server) -> None:
    key = "bulk-k"
    markers = [dash.dir / f"{key}{i}.broken" for i in range(3)]
    for marker in markers:
        marker.touch()
    with dash.client() as client:
        failed = [
            invoke_kwargs(client, "dash_pipeline", key=f"{key}{i}") for i in range(3)
        ]
        for request_id in failed:
            assert finished(client, request_id)["status"] == "failed"
    for marker in markers:
        marker.unlink()
    page.goto(f"{dash.url}/ui")
    page.fill("#filters input[name=q]", key)
    page.select_option("#filters select[name=status]", "failed")
    expect(page).to_have_url(re.compile(r"q=bulk-k"))
    rows = page.locator("#requests tbody tr[data-status]")
    expect(rows).to_have_count(3)
    bulk = page.locator("#bulk")
    expect(bulk.locator("[data-bulk=replay]")).to_have_text("Replay 3 finished")
    bulk.locator("[data-bulk=replay]").click()
    dialog = page.locator("dialog.confirm")
    expect(dialog).to_contain_text(
        "Replay 3 finished requests (failed, matching 'bulk-k')"
    )
    expect(dialog).to_contain_text("the calls that did not succeed run again")
    dialog.locator("button[value=yes]").click()
    expect(page.locator("#bulk-state")).to_have_text("Replayed 3 of 3 requests.")
    with dash.client() as client:
        for request_id in failed:
            record = finished(client, request_id)
            assert (record["run"], record["status"]) == (2, "succeeded")
        running = [
            invoke_kwargs(client, "dash_ticker", count=300 + i, interval_s=0.1)
            for i in range(2)
        ]
        for request_id in running:
            reached(client, request_id, 1)
    page.goto(f"{dash.url}/ui?application=dash_ticker&status=running&last=1h")
    cancel = page.locator("[data-bulk=cancel]")
    count = int(re.findall(r"\d+", cancel.inner_text())[0])
    assert count >= 2
    cancel.click()
    expect(dialog).to_contain_text("nothing more runs for them")
    dialog.locator("button[value=yes]").click()
    expect(page.locator("#bulk-state")).to_have_text(
        f"Cancelled {count} of {count} requests."
    )
    with dash.client() as client:
        for request_id in running:
            assert finished(client, request_id)["status"] == "cancelled"


def test_a_link_to_a_call_the_tree_does_not_show(page: Page, dash: Server) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_mixed", n=140)
        finished(client, request_id)
        runs = client.get(f"/requests/{request_id}").json()["function_runs"]
    item = [r for r in runs if r["name"] == "dash_square"][-1]  # folded away
    page.goto(f"{dash.url}/ui/requests/{request_id}#call={item['id']}")
    focused = page.locator("tr.details-row.focused")
    expect(focused).to_contain_text("dash_square[")
    expect(focused).to_contain_text("Linked call")
    expect(page.locator("tr.row.call", has_text="dash_square[")).to_have_count(0)
    # Its link, as the page gives it.
    assert (
        focused.locator("a[data-call-link]").get_attribute("href")
        == f"#call={item['id']}"
    )


def test_the_latest_run_only_and_a_timeline_of_every_run(
    page: Page, dash: Server
) -> None:
    marker = dash.dir / "runs-k.broken"
    marker.touch()
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_pipeline", key="runs-k", steps=2)
        finished(client, request_id)
    marker.unlink()
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    act(page, '[data-action="replay"]')
    expect(page.locator("#action-message")).to_have_text("Run 2 succeeded.")
    # Both runs on the timeline: the fetch ran in run 1 only (served in run 2),
    # the publish in both.
    expect(page.locator("#tree-scale .lane-label")).to_have_count(2)
    labels = page.locator("#tree-scale .lane-label").all_inner_texts()
    assert labels[0].startswith("run 1 · ") and labels[1].startswith("run 2 · ")
    publish = page.locator("tr.row.call", has_text="dash_publish").locator(".seg")
    expect(publish).to_have_count(2)
    titles = [bar.get_attribute("title") or "" for bar in publish.all()]
    assert titles[0].startswith("attempt 1 · run 1 · failure · ")
    assert titles[1].startswith("attempt 2 · run 2 · success · ")
    lefts = [bar.evaluate("el => parseFloat(el.style.left)") for bar in publish.all()]
    assert lefts[1] > lefts[0]
    fetch = page.locator("tr.row.call", has_text="dash_fetch").locator(".seg")
    expect(fetch).to_have_count(1)
    # Only what ran in run 2: the application and the publish, not the fetch.
    page.select_option("#call-view", "ran")
    names = page.locator("#tree-rows tr.row.call .call-name")
    expect(names).to_have_count(2)
    assert sorted(names.all_inner_texts()) == ["dash_pipeline", "dash_publish"]
    page.select_option("#call-view", "tree")
    expect(page.locator("tr.row.call", has_text="dash_fetch")).to_have_count(1)
