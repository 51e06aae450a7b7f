"""Per-application figures of the requests page, from the store."""

from __future__ import annotations

import time

import pytest

import cairn
from cairn import application, function
from cairn.server._dashboard import _stats
from tests.server.support import invoke, launch, wait_for


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert _stats.percentile(values, 0.50) == 50
    assert _stats.percentile(values, 0.95) == 95
    assert _stats.percentile(values, 0.99) == 99
    assert _stats.percentile([7.0], 0.99) == 7
    assert _stats.percentile([], 0.5) is None


def test_the_store_counts_and_times_recent_requests(run, store):
    @function()
    def stats_nap(seconds: float) -> float:
        time.sleep(seconds)
        if seconds > 0.25:
            raise ValueError("too sleepy")
        return seconds

    @application()
    @function()
    def stats_app(seconds: float) -> float:
        return stats_nap(seconds)

    for seconds in (0.05, 0.1, 0.2, 0.3):
        request = run(stats_app, seconds)
        if seconds > 0.25:
            with pytest.raises(cairn.RequestFailed):
                request.output()
    now_ms = time.time() * 1000
    found = _stats.figures(store, now_ms)
    name = stats_app._spec.name  # type: ignore[attr-defined]
    hour, day = found[name]
    assert (hour.requests, hour.p99_s) == (day.requests, day.p99_s)
    assert day.per_minute == pytest.approx(4 / 1440)
    assert hour.requests == 4 and hour.failed == 1 and hour.finished == 4
    assert hour.failure_rate == "25.0%"
    assert hour.per_minute == pytest.approx(4 / 60)
    assert 0.05 <= hour.p50_s < 0.2 <= hour.p95_s == hour.p99_s < 2.0
    assert not hour.sampled
    # A window that ends before they were created counts none of them.
    counts, durations = store.request_stats(now_ms + 1000, 10)
    assert counts == [] and durations == []


def test_the_requests_page_shows_them(tmp_path):
    from pathlib import Path

    apps = Path(__file__).with_name("metered_app.py")
    server = launch(tmp_path / "srv", apps=apps, concurrency=2)
    try:
        with server.client() as http:
            ids = [invoke(http, "metered_wait", 0.01) for _ in range(3)]
            for request_id in ids:
                wait_for(
                    lambda r=request_id: (
                        http.get(f"/requests/{r}").json()["status"] == "succeeded"
                    )
                )
            page = http.get("/ui").text
    finally:
        server.stop()
    section = page[page.index('id="app-stats"') :]
    section = section[: section.index("</section>")]
    assert "metered_wait" in section
    assert "0.05" in section  # 3 requests / 60 minutes
    assert "0.0%" in section
    assert section.count("ms / ") >= 2  # p50 / p95 / p99 of each window


def test_calls_waiting_for_an_executor_by_function(store):
    from tests.contract.test_store import submission

    store.create_requests([submission(f"waiting-{index}") for index in range(3)])
    assert store.pending_by_function() == {"app": 3}
