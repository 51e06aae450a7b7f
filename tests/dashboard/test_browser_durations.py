"""Durations and the timeline come from each run's real start and end, as the
store records them on the request: a cancelled request's duration stops at its
cancel (it grew for ever), and a request whose child timed out twice lasts the
whole run, its two attempts drawn apart on the timeline (it read a few
milliseconds, both attempts squashed into a tick at 0)."""

from __future__ import annotations

import re
import subprocess

from playwright.sync_api import Page, expect

from tests.dashboard.support import finished, reached
from tests.server.support import CAIRN, Server, invoke_kwargs


def seconds(text: str) -> float:
    """A duration as the dashboard and the CLI print it (``6ms``, ``2.05s``, ``1m02s``)."""
    text = text.strip()
    if match := re.fullmatch(r"([0-9.]+)ms", text):
        return float(match[1]) / 1000
    if match := re.fullmatch(r"([0-9.]+)s", text):
        return float(match[1])
    if match := re.fullmatch(r"(\d+)m(\d+)s", text):
        return int(match[1]) * 60 + int(match[2])
    raise AssertionError(f"not a duration: {text!r}")


def _cli_duration(dash: Server, request_id: str) -> float:
    shown = subprocess.run(
        [
            CAIRN,
            "requests",
            "show",
            request_id,
            "--store",
            f"sqlite:///{dash.dir}/s.db",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = re.search(r"duration\s+(\S+) \(run", shown)
    assert found, shown
    return seconds(found[1])


def test_a_cancelled_requests_duration_stops_at_its_cancel(
    page: Page, dash: Server
) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_ticker", count=300, interval_s=0.1)
        reached(client, request_id, 5)
        client.post(f"/applications/dash_ticker/requests/{request_id}/cancel")
        record = finished(client, request_id)
    ran_s = (record["finished_at_ms"] - record["started_at_ms"]) / 1000
    assert 0.4 < ran_s < 20, record
    page.wait_for_timeout(2500)  # long after the cancel
    page.goto(f"{dash.url}/ui")
    listed = seconds(page.locator(f"#r-{request_id} .duration").inner_text())
    assert abs(listed - ran_s) < 0.05, (listed, ran_s)
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    shown = seconds(page.locator("#request-duration").inner_text())
    assert abs(shown - ran_s) < 0.05, (shown, ran_s)
    page.wait_for_timeout(1500)  # no ticking either
    expect(page.locator("#request-duration")).to_have_text(
        page.locator("#request-duration").inner_text()
    )
    assert abs(_cli_duration(dash, request_id) - ran_s) < 0.05


def test_a_run_whose_child_timed_out_lasts_and_draws_both_attempts(
    page: Page, dash: Server
) -> None:
    with dash.client() as client:
        request_id = invoke_kwargs(client, "dash_deadline", seconds=30)
        record = finished(client, request_id)
    assert record["status"] == "succeeded"
    page.goto(f"{dash.url}/ui/requests/{request_id}")
    # Two attempts stopped at their 1 s timeout: the run took over 2 s.
    assert seconds(page.locator("#request-duration").inner_text()) >= 2.0
    assert _cli_duration(dash, request_id) >= 2.0
    stuck = page.locator("tr.row.call", has_text="dash_stuck")
    bars = stuck.locator(".seg")
    expect(bars).to_have_count(2)
    placed = [
        bar.evaluate("el => [parseFloat(el.style.left), parseFloat(el.style.width)]")
        for bar in bars.all()
    ]
    # Each attempt about half the run, the second after the first.
    (left_1, width_1), (left_2, width_2) = placed
    assert width_1 > 30 and width_2 > 30, placed
    assert left_2 >= left_1 + width_1 - 1, placed
    # The application call's own bar spans the run.
    app = page.locator("tr.row.call", has_text="dash_deadline").locator(".seg")
    assert app.evaluate("el => parseFloat(el.style.width)") > 90
