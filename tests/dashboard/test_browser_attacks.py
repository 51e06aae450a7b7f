"""The attack of issue 13, item 3, in a real browser: a page on another localhost
port tries to create, cancel and delete requests on a server without a key. Every
attempt is refused (403): nothing is created, cancelled or deleted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http import server as http_server

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.dashboard.browser import CHROMIUM_ARGS, chromium
from tests.dashboard.support import finished
from tests.server.support import Server, invoke, invoke_kwargs

# Simple requests a page may send anywhere without asking (no CORS preflight):
# a text/plain body, a body without a type, a multipart form, and a form post.
_ATTACK = """<!doctype html><html><body>
<form id="f" method="post" action="{target}/applications/dash_add" target="sink">
<input name="0" value="1"></form><iframe name="sink"></iframe>
<script>
(async () => {{
  const t = "{target}";
  const form = new FormData(); form.append("0", "1");
  const tries = [
    [t + "/applications/dash_add", "POST", "1"],
    [t + "/applications/dash_add", "POST", new Blob(["1"])],
    [t + "/applications/dash_add", "POST", form],
    [t + "/applications/dash_ticker/requests/{running}/cancel", "POST", ""],
    [t + "/applications/dash_add/requests/{done}", "DELETE", null],
  ];
  for (const [url, method, body] of tries) {{
    try {{ await fetch(url, {{method, body, mode: "no-cors"}}); }} catch (e) {{}}
  }}
  document.getElementById("f").submit();
  setTimeout(() => {{ document.title = "done"; }}, 500);
}})();
</script></body></html>"""


class _Page(http_server.BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=chromium(), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def _ids(http_client: httpx.Client) -> set[str]:
    page = http_client.get("/applications/dash_add/requests", params={"limit": 100})
    return {item["id"] for item in page.json()["requests"]}


def test_a_page_on_another_port_cannot_act(
    browser: Browser, dash: Server, http: httpx.Client
) -> None:
    done = invoke(http, "dash_add", 1)
    finished(http, done)
    running = invoke_kwargs(http, "dash_ticker", count=300, interval_s=0.1)
    before = _ids(http)
    port = dash.url.rsplit(":", 1)[1]
    _Page.html = _ATTACK.format(
        target=f"http://localhost:{port}", running=running, done=done
    ).encode()
    attacker = http_server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.goto(f"http://localhost:{attacker.server_address[1]}/")
        page.wait_for_function("document.title === 'done'", timeout=30_000)
        page.close()
    finally:
        attacker.shutdown()
        attacker.server_close()
    assert _ids(http) == before  # nothing created, nothing deleted
    assert http.get(f"/requests/{running}").json()["status"] == "running"
    assert http.get(f"/requests/{done}").status_code == 200
    http.post(f"/applications/dash_ticker/requests/{running}/cancel")
