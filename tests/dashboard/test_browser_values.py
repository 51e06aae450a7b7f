"""Values in the browser: a collapsible JSON tree, copy buttons for ids and values,
a download link to the API's output route, and an output over the page's budget
shown whole on demand (it was cut at 20,000 characters with no way to see the
rest); a pickled object shows its fields (it showed only its size)."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from tests.dashboard.support import finished
from tests.server.support import Server, invoke_kwargs


def _clipboard(page: Page) -> str:
    return str(page.evaluate("navigator.clipboard.readText()"))


def test_a_large_output_is_shown_whole_on_demand_and_downloads(
    page: Page, dash: Server
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_words", n=5000)
        finished(client, request_id)
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    output = page.locator("#request-output")
    expect(output.locator(".cut")).to_contain_text("Too large to show in full")
    download = output.locator("a[download]").first
    href = download.get_attribute("href")
    assert href == (
        f"/v1/namespaces/default/applications/dash_words/requests/{request_id}/output"
    )
    whole = page.request.get(f"{dash.url}{href}")
    assert whole.ok and len(json.loads(whole.body())) == 5000
    output.locator("[data-show-all]").click()
    tree = output.locator(".jv")
    expect(tree.locator("summary").first).to_contain_text("[5000 items]")
    expect(tree.locator(".jv-leaf")).to_have_count(500)  # a page of them
    expect(tree.locator("button", has_text="4,500 not shown")).to_be_visible()
    for _ in range(9):
        tree.locator("button", has_text="Show 500 more").click()
    expect(tree.locator(".jv-leaf")).to_have_count(5000)
    expect(tree.locator(".jv-leaf").last).to_have_text('4999: "word 4999"')
    # Copy the request's id.
    page.locator("#request-head [data-copy]").click()
    assert _clipboard(page) == request_id


def test_json_is_a_collapsible_tree_and_objects_show_their_fields(
    page: Page, dash: Server
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_mixed", n=4)
        finished(client, request_id)
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    output = page.locator("#request-output")
    root = output.locator(".jv > details")
    expect(root.locator(":scope > summary")).to_have_text("{3 keys}")
    halves = root.locator("details", has_text="halves:").first
    expect(halves.locator(":scope > summary")).to_have_text("halves: [4 items]")
    expect(halves.locator(".jv-leaf").first).to_be_visible()
    halves.locator(":scope > summary").click()  # folded
    expect(halves.locator(".jv-leaf").first).to_be_hidden()
    # The text, one click away; copying copies it.
    output.locator("[data-json-text]").click()
    expect(output.locator("pre.json")).to_be_visible()
    output.locator("[data-copy-value]").click()
    assert json.loads(_clipboard(page))["total"] == 14
    # A pickled object of the application's own class, by its fields.
    page.locator("button[data-details]", has_text="dash_read").click()
    opened = page.locator("tr.details-row .value").last
    expect(opened.locator(".jv")).to_contain_text('sensor: "kitchen"')
    expect(opened.locator(".jv")).to_contain_text("value: 21.5")
    call_id = page.locator("tr.details-row").get_attribute("data-details-for")
    output_route = f"/applications/dash_mixed/requests/{request_id}/output/{call_id}"
    expect(opened.locator("a[download]")).to_have_attribute(
        "href", f"/v1/namespaces/default{output_route}"
    )
