"""The dashboard's pages over HTTP, against a real ``cairn serve``: what they show,
escaping, not-found pages, pagination and filters, the live stream, big maps."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import markupsafe
from httpx_sse import connect_sse

from tests.dashboard.apps import EVIL
from tests.dashboard.support import BIG_MAP, finished, rows_of, tree_html, view
from tests.server.support import Server, invoke, invoke_kwargs, wait_for


def _calls(client: httpx.Client, request_id: str) -> dict[str, str]:
    """Function name -> call id (the last call of each function)."""
    runs = client.get(f"/requests/{request_id}").json()["function_runs"]
    return {run["name"]: run["id"] for run in runs}


# An attribute naming another host (``//cdn…``, ``https://…``): nothing may be
# fetched from elsewhere.
_EXTERNAL = re.compile(r'(?:src|href|action)="(?:[a-z][a-z0-9+.-]*:)?//', re.I)


def _row(html: str, request_id: str) -> str:
    """The requests-page row of one request."""
    found = re.search(rf'<tr id="r-{re.escape(request_id)}".*?</tr>', html, re.S)
    assert found is not None, request_id
    return found[0]


def test_root_and_requests_page(http: httpx.Client) -> None:
    root = http.get("/")
    assert root.status_code == 303
    assert root.headers["location"] == "/ui"
    request_id = invoke(http, "dash_add", 2)
    finished(http, request_id)
    page = http.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for app in ("dash_add", "dash_ticker", "dash_pipeline", "dash_fanout"):
        assert f">{app}</a>" in page.text
    assert request_id in rows_of(page.text)
    # Its row: status, outcome, start time, duration (no progress bar: finished).
    row = _row(page.text, request_id)
    assert '<span class="badge s-succeeded">succeeded</span>' in row
    assert '<td class="outcome" data-label="Outcome">success' in row
    assert re.search(r">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time></td>", row)
    assert re.search(r'class="num nowrap duration"[^>]*>[0-9.]+(ms|s)</td>', row)
    assert 'role="progressbar"' not in row
    # The invoke form lists each application's parameters, with their types.
    assert 'name="a"' in page.text and 'b</span> <span class="muted">int' in page.text
    assert http.get("/ui/").headers["location"] == "/ui"
    assert http.get("/ui/login").headers["location"] == "/ui"  # auth is off
    script = http.get("/ui/static/dashboard.js")
    style = http.get("/ui/static/dashboard.css")
    assert script.status_code == 200 and style.status_code == 200
    # Nothing is fetched from elsewhere: no other host named by a page or the CSS.
    request_page = http.get(f"/ui/requests/{request_id}").text
    for html in (page.text, request_page):
        assert not _EXTERNAL.search(html)
        # One script, the package's own file; no inline script (the CSP forbids it).
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert len(scripts) == 1 and 'src="/ui/static/dashboard.js?v=' in scripts[0]
    assert "@import" not in style.text
    assert not re.search(r"url\(\s*['\"]?([a-z]+:)?//", style.text)
    assert not re.search(r"[\"'`]([a-z]+:)?//", script.text)


def test_request_page_shows_tree_values_and_timeline(http: httpx.Client) -> None:
    request_id = invoke(http, "dash_mixed", 10)
    assert finished(http, request_id)["status"] == "succeeded"
    page = http.get(f"/ui/requests/{request_id}")
    assert page.status_code == 200
    html = page.text
    # Nested calls, their caught failures, a folded map and a reduce.
    assert "dash_read</button>" in html
    assert "ValueError: item 3 is unlucky" in html
    assert "dash_square.map</span>" in html and "10 items" in html
    assert "dash_total.reduce</button>" in html
    assert "dash_total step 9</button>" in html
    # The output, formatted; the input labelled with its parameter name.
    assert "&#34;sensor&#34;: &#34;kitchen&#34;" in html
    assert "<dt>n</dt>" in html
    # A bar per call on the run's timeline, as percentages.
    bars = re.findall(
        r'class="seg o-success"[^>]* style="left: ([0-9.]+)%; width: ([0-9.]+)%"', html
    )
    assert len(bars) >= 20
    assert all(0 <= float(left) <= 100 and 0 < float(w) <= 100 for left, w in bars)
    # A map group's items load on demand.
    group = re.search(r'data-group="([^"]+)"', html)
    assert group is not None
    items = tree_html(view(http, request_id, g=f"all.100.{group[1]}"))
    assert items.count("dash_square[") == 10
    # A call opened: attempts with errors, arguments, the pickled output by type.
    calls = _calls(http, request_id)
    read = http.get(f"/ui/requests/{request_id}/calls/{calls['dash_read']}").text
    assert "<dt>sensor</dt>" in read and "&#34;kitchen&#34;" in read
    # The pickled output (the application's own class) by its fields.
    assert re.search(r"&#34;__type__&#34;: &#34;[\w.]*Reading&#34;", read)
    assert "&#34;value&#34;: 21.5" in read
    half = http.get(f"/ui/requests/{request_id}/calls/{calls['dash_half']}").text
    assert "dash_half" in half


def test_failed_call_error_then_replay_marks_checkpoints(
    http: httpx.Client, dash: Server
) -> None:
    marker = Path(dash.dir) / "k-replay.broken"
    marker.touch()
    request_id = invoke(http, "dash_pipeline", "k-replay")
    assert finished(http, request_id)["status"] == "failed"
    html = http.get(f"/ui/requests/{request_id}").text
    assert "publishing k-replay failed: the sink is down" in html
    assert (
        '<pre class="traceback" tabindex="0">' in html
        and "Traceback (most recent call last)" in html
    )
    assert "ConnectionError" in html
    publish = _calls(http, request_id)["dash_publish"]
    opened = http.get(f"/ui/requests/{request_id}/calls/{publish}").text
    assert "the sink is down" in opened and "No output: the call failed." in opened
    marker.unlink()
    replay = http.post(f"/applications/dash_pipeline/requests/{request_id}/replay")
    assert replay.status_code == 200, replay.text
    assert finished(http, request_id)["status"] == "succeeded"
    html = http.get(f"/ui/requests/{request_id}").text
    assert "published fetched k-replay" in html
    # dash_fetch was served from its checkpoint by the replay; dash_publish ran.
    fetch_row = re.search(r"dash_fetch</button>(.*?)</tr>", html, re.S)
    assert fetch_row is not None and "checkpoint" in fetch_row[1]
    assert "served 1 from checkpoints" in html


def test_user_text_is_escaped(http: httpx.Client) -> None:
    request_id = invoke(http, "dash_evil", True)
    finished(http, request_id)
    pages = [http.get(f"/ui/requests/{request_id}").text]
    calls = _calls(http, request_id)
    for call_id in calls.values():
        pages.append(http.get(f"/ui/requests/{request_id}/calls/{call_id}").text)
    update = view(http, request_id, d=list(calls.values()))
    pages.append(tree_html(update) + "".join(update["parts"].values()))
    escaped = "&lt;script&gt;window.__pwned = 1&lt;/script&gt;"
    for html in pages:
        assert "<script>window" not in html
        assert "<img src=x" not in html
    assert escaped in pages[0]  # the error, its traceback and the progress message
    assert pages[0].count(escaped) >= 3
    whole = str(markupsafe.escape(EVIL))
    assert f'<p class="error-line"><strong>ValueError</strong>: {whole}</p>' in pages[0]
    assert f'<td class="message" data-label="Message">{whole}</td>' in pages[0]
    echoed = pages[1 + list(calls).index("dash_echo_evil")]
    assert escaped in echoed  # its argument and its output
    ok_id = invoke(http, "dash_evil", False)
    finished(http, ok_id)
    output = http.get(f"/ui/requests/{ok_id}").text
    assert "<script>window" not in output and escaped in output
    assert EVIL not in output


def test_attempts_show_each_error_and_duration(http: httpx.Client) -> None:
    request_id = invoke(http, "dash_retry", "r-attempts")
    assert finished(http, request_id)["status"] == "succeeded"
    html = http.get(f"/ui/requests/{request_id}").text
    row = re.search(r"dash_flaky</button>(.*?)</tr>", html, re.S)
    assert row is not None and "3 (2 failed)" in row[1]
    flaky = _calls(http, request_id)["dash_flaky"]
    opened = http.get(f"/ui/requests/{request_id}/calls/{flaky}").text
    attempts = re.findall(r'<tr class="o-(\w+)">(.*?)</tr>', opened, re.S)
    assert [outcome for outcome, _ in attempts] == ["failure", "failure", "success"]
    for number, (_, cells) in enumerate(attempts, 1):
        assert re.search(r'<td class="num nowrap"[^>]*>[0-9.]+(ms|s)', cells), cells
        if number < 3:
            assert f"RuntimeError</strong>: attempt {number} of r-attempts failed" in (
                cells
            )
            assert '<pre class="traceback" tabindex="0">Traceback' in cells
            assert re.search(r"retry after [0-9.]+ms", cells)  # jittered backoff
        else:
            assert "traceback" not in cells
    assert "r-attempts worked on attempt 3" in opened


def test_unknown_request_and_page_are_404_pages(http: httpx.Client) -> None:
    page = http.get("/ui/requests/%3Cscript%3Enope")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No request &lt;script&gt;nope." in page.text
    assert "<script>nope" not in page.text
    for path in (
        "/ui/requests/nope/view?token=t&have=0",
        "/ui/requests/nope/calls/x",
        "/ui/no/such/page",
    ):
        assert http.get(path).status_code == 404, path
    request_id = invoke(http, "dash_add", 1)
    missing = http.get(f"/ui/requests/{request_id}/calls/nope")
    assert missing.status_code == 404 and "has no call nope" in missing.text
    for params in (
        {"token": "t", "have": "-1"},
        {"token": "<bad>", "have": "0"},
        {"token": "t", "have": "0", "g": "all.-1.x"},
        {"token": "t", "have": "0", "g": "some.10.x"},
        {"token": "t", "have": "0", "p": "99999999.x"},
        {"token": "t", "have": "0", "view": "everything"},
        {"token": "t", "have": "0", "log": "yesterday"},
    ):
        bad = http.get(f"/ui/requests/{request_id}/view", params=params)
        assert bad.status_code == 400, (params, bad.text)
        assert bad.json()["error"]["message"], bad.text


def test_pagination_and_filters(http: httpx.Client) -> None:
    made = [invoke(http, "dash_add", i) for i in range(23)]
    for request_id in made:
        finished(http, request_id)
    seen: list[str] = []
    url = "/ui?application=dash_add&limit=10"
    pages = 0
    while url:
        html = http.get(url).text
        pages += 1
        ids = rows_of(html)
        assert len(ids) <= 10
        # Only the chosen application's requests (each row links its application).
        apps = re.findall(r'<a class="app-link" href="/ui\?application=([^"]+)"', html)
        assert apps == ["dash_add"] * len(ids)
        seen += ids
        older = re.search(r'id="older" href="([^"]+)"', html)
        url = older[1].replace("&amp;", "&") if older else ""
    assert len(seen) == len(set(seen))
    assert set(made) <= set(seen)
    assert pages >= 3
    failed_id = invoke(http, "dash_evil", True)
    finished(http, failed_id)
    failed_page = http.get("/ui", params={"status": "failed"}).text
    assert failed_id in rows_of(failed_page)
    assert not set(made) & set(rows_of(failed_page))
    assert 'data-status="succeeded"' not in failed_page
    everything = http.get("/ui", params={"status": "", "application": ""})
    assert everything.status_code == 200
    bad = http.get("/ui", params={"status": "bogus"})
    assert bad.status_code == 400 and "status must be one of" in bad.text


def test_stream_sends_progress_status_and_new_rows(http: httpx.Client) -> None:
    running = invoke(http, "dash_ticker", 12)
    since = time.time() * 1000
    progress: list[float] = []
    statuses: list[str] = []
    new: list[str] = []
    started_new = ""
    with connect_sse(
        http, "GET", "/ui/stream", params={"watch": running, "since": str(since)}
    ) as source:
        assert source.response.status_code == 200
        for event in source.iter_sse():
            data = json.loads(event.data)
            if not started_new:  # a request started while the page is open
                started_new = invoke(http, "dash_add", 5)
            if event.event == "progress" and data["id"] == running:
                progress.append(data["percent"])
            if event.event == "row" and data["id"] == running:
                statuses.append(re.findall(r'data-status="(\w+)"', data["html"])[0])
            if event.event == "row" and data["new"]:
                new.append(data["id"])
            if statuses and statuses[-1] == "succeeded" and started_new in new:
                break
    assert len(set(progress)) >= 2 and progress == sorted(progress)
    assert statuses[-1] == "succeeded"
    assert started_new in new


def test_ten_thousand_item_map_page_stays_small_and_fast(
    http: httpx.Client, big_map: str
) -> None:
    assert finished(http, big_map, timeout_s=90)["status"] == "succeeded"
    started = time.monotonic()
    page = http.get(f"/ui/requests/{big_map}")
    elapsed_s = time.monotonic() - started
    assert page.status_code == 200
    assert elapsed_s < 3.0, elapsed_s
    assert len(page.content) < 50_000
    assert "10,000 items" in page.text and "10,000 succeeded" in page.text
    group = re.search(r'data-group="([^"]+)"', page.text)
    assert group is not None
    started = time.monotonic()
    first = tree_html(view(http, big_map, g=f"all.100.{group[1]}"))
    unfold_s = time.monotonic() - started
    assert first.count(">dash_square[") == 100
    more = re.search(r'data-more [^>]*data-shown="(\d+)"', first)
    assert more is not None and more[1] == "100"
    assert f"{BIG_MAP - 100:,} not shown" in first
    started = time.monotonic()
    later = tree_html(view(http, big_map, g=f"all.300.{group[1]}"))
    more_s = time.monotonic() - started
    assert later.count(">dash_square[") == 300 and "dash_square[299]" in later
    assert f"{BIG_MAP - 300:,} not shown" in later
    problems = tree_html(view(http, big_map, g=f"problems.100.{group[1]}"))
    assert ">dash_square[" not in problems
    print(
        f"10,001 calls: page {elapsed_s * 1000:.0f} ms ("
        f"{page.headers['server-timing']}), unfold {unfold_s * 1000:.0f} ms, "
        f"300 items {more_s * 1000:.0f} ms"
    )


def test_request_page_of_running_request(http: httpx.Client) -> None:
    request_id = invoke_kwargs(http, "dash_ticker", count=30, interval_s=0.05)
    wait_for(lambda: http.get(f"/requests/{request_id}").json()["progress"] is not None)
    html = http.get(f"/ui/requests/{request_id}").text
    assert 'data-finished="0"' in html
    assert 'id="request-progress"' in html and 'role="progressbar"' in html
    assert re.search(r'data-action="replay" disabled', html)
    finished(http, request_id)


def test_a_request_no_worker_serves_says_what_it_waits_for(
    dash: Server, http: httpx.Client
) -> None:
    import dataclasses

    from cairn.store import open_store
    from tests.contract.test_store import submission

    request, root, _ = submission("ghost-request")
    payload = json.dumps({"args": [], "kwargs": {}}).encode()
    request = dataclasses.replace(request, application="ghost_app", input=payload)
    root = dataclasses.replace(root, function="ghost_app")
    store = open_store(f"sqlite:///{dash.dir / 's.db'}")
    try:
        store.create_request(request, root, payload)
    finally:
        store.close()
    page = http.get(f"/ui/requests/{request.id}")
    assert page.status_code == 200
    assert "waiting for a worker that serves ghost_app" in page.text
