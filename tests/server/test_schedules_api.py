"""Schedules over HTTP: add, list, pause, resume, delete; bad input is a 4xx
naming the problem; the served worker starts a due tick's request."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cairn import _calls
from cairn.store import open_store
from tests.crash import wait_apps

CAIRN = str(Path(sys.executable).parent / "cairn")
KEY = "schedule-test-key"
NS = "/v1/namespaces/default"


def test_schedules_over_http(start_server, store_url: str, tmp_path: Path):
    server = start_server(
        api_key=KEY,
        store_url=store_url,
        apps=Path(wait_apps.__file__),
        CAIRN_TEST_EFFECTS=str(tmp_path / "effects.log"),
    )
    with server.client() as http:
        made = http.post(
            f"{NS}/applications/scheduled/schedules",
            json={"cron": "0 9 * * MON-FRI", "input": "over http"},
        )
        assert made.status_code == 200, made.text
        schedule = made.json()
        assert schedule["application"] == "scheduled"
        assert schedule["input"] == "over http" and schedule["paused"] is False
        listed = http.get("/schedules").json()["schedules"]
        assert [s["id"] for s in listed] == [schedule["id"]]

        # Due now: the server's worker starts its request.
        store = open_store(store_url)
        try:
            store.pause_schedule(schedule["id"], False, _calls.now_ms() - 1)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                found = http.get("/schedules").json()["schedules"][0]
                if found["last_request_id"]:
                    break
                time.sleep(0.1)
            request_id = found["last_request_id"]
            assert request_id
            while time.monotonic() < deadline:
                output = http.get(
                    f"/applications/scheduled/requests/{request_id}/output"
                )
                if output.status_code == 200:
                    break
                time.sleep(0.1)
            assert output.json() == "ran over http"
        finally:
            store.close()

        paused = http.post(f"/schedules/{schedule['id']}/pause")
        assert paused.status_code == 200 and paused.json()["paused"] is True
        resumed = http.post(f"{NS}/schedules/{schedule['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["paused"] is False
        assert http.delete(f"/schedules/{schedule['id']}").status_code == 204
        gone = http.delete(f"/schedules/{schedule['id']}")
        assert gone.status_code == 404
        assert gone.json()["error"]["code"] == "schedule_not_found"

        bad = http.post(
            "/applications/scheduled/schedules", json={"cron": "61 * * * *"}
        )
        assert bad.status_code == 400
        assert "bad cron expression" in bad.json()["error"]["message"]
        extra = http.post(
            "/applications/scheduled/schedules", json={"cron": "* * * * *", "x": 1}
        )
        assert extra.status_code == 400
        unknown = http.post("/applications/nope/schedules", json={"cron": "* * * * *"})
        assert unknown.status_code == 404
        assert http.post("/schedules/nope/pause").status_code == 404

    # The CLI on the server (its key from CAIRN_API_KEY).
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CAIRN_API_KEY": KEY}
        env.pop("CAIRN_STORE", None)
        return subprocess.run(
            [CAIRN, "schedules", *args, "--server", server.url],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    added = cli("add", "scheduled", "--cron", "*/5 * * * *", "--input", '"cli"')
    assert added.returncode == 0, added.stderr
    schedule_id = added.stdout.split()[1]
    assert schedule_id in cli("list").stdout
    assert "paused" in cli("pause", schedule_id).stdout
    assert "next 20" in cli("resume", schedule_id).stdout
    assert cli("delete", schedule_id).returncode == 0
    missing = cli("delete", schedule_id)
    assert missing.returncode == 1 and "404: no schedule with id" in missing.stderr
