"""Signals over HTTP (with the API key) and from the CLI, on SQLite and PostgreSQL:
the status says what a request waits for; bad input gets a clear 4xx."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.crash import wait_apps
from tests.server.support import invoke

CAIRN = str(Path(sys.executable).parent / "cairn")
KEY = "signal-test-key"


def _path(request_id: str, tail: str = "") -> str:
    return (
        f"/v1/namespaces/default/applications/await_signal/requests/{request_id}{tail}"
    )


def _waiting_for(http: httpx.Client, request_id: str, text: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        data: dict[str, Any] = http.get(_path(request_id)).json()
        if data.get("waiting") and text in data["waiting"]:
            return data
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} never said it waits for {text!r}")


def _output(http: httpx.Client, request_id: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = http.get(_path(request_id, "/output"))
        if response.status_code == 200:
            return response.json()
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} did not finish")


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    for name in ("CAIRN_API_KEY", "CAIRN_STORE", "CAIRN_API_URL"):
        if name not in env:
            environ.pop(name, None)
    return subprocess.run(
        [CAIRN, *args], capture_output=True, text=True, env=environ, timeout=60
    )


def test_signals_over_http_and_the_cli(start_server, store_url: str, tmp_path: Path):
    server = start_server(
        api_key=KEY,
        store_url=store_url,
        apps=Path(wait_apps.__file__),
        CAIRN_TEST_EFFECTS=str(tmp_path / "effects.log"),
    )
    with server.client() as http:
        # Over HTTP, with the key.
        first = invoke(http, "await_signal", 1)
        _waiting_for(http, first, "waiting: signal 'go'")
        anonymous = httpx.post(server.url + _path(first, "/signals/go"), json=1)
        assert anonymous.status_code == 401
        sent = http.post(_path(first, "/signals/go"), json=41)
        assert sent.status_code == 200, sent.text
        assert sent.json() == {"request_id": first, "signal": "go", "seq": 1}
        assert _output(http, first) == 42

        # A finished request takes no signal; an unknown one is a 404.
        finished = http.post(_path(first, "/signals/go"), json=1)
        assert finished.status_code == 409
        assert finished.json()["error"]["code"] == "request_finished"
        assert "has succeeded" in finished.json()["error"]["message"]
        unknown = http.post(_path("no-such-request", "/signals/go"), json=1)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "request_not_found"

        # From the CLI: on the server (its key from CAIRN_API_KEY), then on the store.
        second = invoke(http, "await_signal", 2)
        third = invoke(http, "await_signal", 3)
        _waiting_for(http, second, "signal 'go'")
        shown = _cli("requests", "show", second, "--store", store_url)
        assert "waiting: signal 'go'" in shown.stdout, shown.stdout + shown.stderr
        done = _cli(
            "requests",
            "signal",
            second,
            "go",
            "--value",
            "8",
            "--server",
            server.url,
            CAIRN_API_KEY=KEY,
        )
        assert done.returncode == 0, done.stderr
        assert "sent signal 'go'" in done.stdout
        assert _output(http, second) == 10
        done = _cli(
            "requests", "signal", third, "go", "--value", "5", "--store", store_url
        )
        assert done.returncode == 0, done.stderr
        assert _output(http, third) == 8
        refused = _cli(
            "requests", "signal", third, "go", "--value", "5", "--store", store_url
        )
        assert refused.returncode == 1
        assert "request_finished" in refused.stderr
        bad = _cli(
            "requests", "signal", third, "go", "--value", "{oops", "--store", store_url
        )
        assert bad.returncode == 2
        assert "not JSON" in bad.stderr


def test_bad_signals_get_a_clear_400(start_server, tmp_path: Path):
    server = start_server(
        api_key=KEY,
        apps=Path(wait_apps.__file__),
        CAIRN_TEST_EFFECTS=str(tmp_path / "effects.log"),
    )
    with server.client() as http:
        request_id = invoke(http, "await_signal", 1)
        not_json = http.post(
            _path(request_id, "/signals/go"),
            content=b"{nope",
            headers={"Content-Type": "application/json"},
        )
        assert not_json.status_code == 400
        assert "signal's value" in not_json.json()["error"]["message"]
        too_long = http.post(_path(request_id, "/signals/" + "x" * 300), json=1)
        assert too_long.status_code == 400
        assert "signal name" in too_long.json()["error"]["message"]
        as_text = http.post(
            _path(request_id, "/signals/go"),
            content=b"1",
            headers={"Content-Type": "text/plain"},
        )
        assert as_text.status_code == 415
        assert http.post(_path(request_id, "/signals/go"), json=1).status_code == 200
        assert _output(http, request_id) == 2
