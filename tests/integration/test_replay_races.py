"""Replays started at once (a double-click, two terminals, a script in a loop): while
a run of the request is pending or running, every other replay is refused, so a
side effect runs once more, not once per replay.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import cairn
from cairn.store import Store
from cairn.store._sqlbase import this_host
from cairn.types import RequestStatus
from tests.conftest import SideEffects
from tests.contract.test_store import T0, new_request
from tests.server.support import CAIRN, launch, wait_for

REPLAYS = 20

APP = """
from __future__ import annotations

import time
from pathlib import Path

from cairn import application, function

EFFECTS = Path(__file__).with_name("effects.log")
HOLD = Path(__file__).with_name("hold")


@function()
def race_effect(n: int) -> int:
    with open(EFFECTS, "a") as handle:
        handle.write("effect\\n")
    # The run goes on while the test holds it (the other replays arrive meanwhile),
    # however slowly they come on a loaded machine.
    deadline = time.monotonic() + 120
    while HOLD.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return n + 1


@application()
@function()
def race_app(n: int) -> int:
    return race_effect(n) * 2
"""


def _at_once(attempt: Callable[[], Any], times: int = REPLAYS) -> list[Any]:
    """``attempt()`` in ``times`` threads released together; what each returned."""
    barrier = threading.Barrier(times)

    def one() -> Any:
        barrier.wait()
        return attempt()

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(lambda _: one(), range(times)))


def test_concurrent_replays_in_threads_accept_one(
    store_url: str, effects: SideEffects
) -> None:
    @cairn.function()
    def replay_race_effect(n: int) -> int:
        effects.record("effect")
        time.sleep(1.0)  # the run is still going while the other replays arrive
        return n + 1

    @cairn.application()
    @cairn.function()
    def replay_race_app(n: int) -> int:
        return replay_race_effect(n) * 2

    request = cairn.run_local_application(replay_race_app, 1, cairn_store=store_url)
    assert request.output() == 4
    (effect,) = [c for c in request.calls() if c.function.endswith("effect")]

    def replay() -> str | cairn.RequestRunning:
        again = cairn.get_request(request.id, store=store_url)
        try:
            again.replay(from_call=effect.id)
        except cairn.RequestRunning as error:
            return error
        return "accepted"

    outcomes = _at_once(replay)
    refused = [o for o in outcomes if isinstance(o, cairn.RequestRunning)]
    assert outcomes.count("accepted") == 1, outcomes
    assert len(refused) == REPLAYS - 1
    assert all(error.run == 2 and "run 2" in error.message for error in refused)
    assert all(error.code == "request_running" for error in refused)
    assert effects.count("effect") == 2  # once more, not once per replay
    assert request.status() is RequestStatus.SUCCEEDED
    assert request.output() == 4

    # The run finished: the next replay is accepted.
    cairn.get_request(request.id, store=store_url).replay(from_call=effect.id)
    assert effects.count("effect") == 3


def test_concurrent_replays_over_http_accept_one(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tmp_path / "race_app.py"
    app.write_text(APP)
    hold = tmp_path / "hold"
    effects = SideEffects(tmp_path / "effects.log")
    server = launch(tmp_path / "server", store_url=store_url, apps=app)
    try:
        with server.client() as http:
            path = _check_http(server.url, http, effects, hold)
            request_id = path.rsplit("/", 1)[-1]
            # The CLI and a remote Request are refused too while run 2 goes on.
            cli = subprocess.run(
                [CAIRN, "requests", "replay", request_id, "--store", store_url],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert cli.returncode != 0
            assert "run 2" in cli.stderr + cli.stdout
            assert "request_running" in cli.stderr + cli.stdout
            monkeypatch.setenv("CAIRN_API_URL", server.url)
            with pytest.raises(cairn.RequestRunning, match="run 2") as refused:
                cairn.get_request(request_id).replay()
            assert refused.value.run == 2
            hold.unlink()
            wait_for(lambda: http.get(path).json()["status"] == "succeeded", 60)
        assert effects.count("effect") == 2
    finally:
        server.stop()


def _check_http(url: str, http: httpx.Client, effects: SideEffects, hold: Path) -> str:
    """Run race_app once, then replay it from its side effect 20 times at once,
    its run 2 held until ``hold`` is deleted; the request's path."""
    invoked = http.post("/applications/race_app", json=1)
    assert invoked.status_code == 200, invoked.text
    path = f"/applications/race_app/requests/{invoked.json()['request_id']}"
    wait_for(lambda: http.get(path).json()["status"] == "succeeded", 60)
    assert effects.count("effect") == 1
    hold.touch()

    runs = http.get(path).json()["function_runs"]
    (effect,) = [run["id"] for run in runs if run["name"] == "race_effect"]

    def replay() -> httpx.Response:
        with httpx.Client(base_url=url, timeout=60) as own:
            return own.post(f"{path}/replay", json={"from_call": effect})

    answers = _at_once(replay)
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] + [409] * (REPLAYS - 1), statuses
    (accepted,) = [a for a in answers if a.status_code == 200]
    assert accepted.json()["run"] == 2
    for answer in answers:
        if answer.status_code == 409:
            error = answer.json()["error"]
            assert error["code"] == "request_running"
            assert "run 2" in error["message"]
    return path


def test_a_pending_run_is_refused_until_nobody_can_take_it(store: Store) -> None:
    def replay(at_ms: float, owner: str | None = None) -> int:
        return store.start_replay(
            "req-1", from_call=None, strict=False, now_ms=at_ms, owner=owner
        )

    def alive(worker_id: str, at_ms: float) -> None:
        store.heartbeat(worker_id, this_host(), os.getpid(), at_ms)

    new_request(store)  # never run, and no engine anywhere: nobody will take it
    assert replay(T0 + 60_000) == 2
    assert replay(T0 + 61_000) == 3  # still nobody

    # A local replay's own engine will run it while it lives.
    alive("local", T0 + 62_000)
    assert replay(T0 + 62_000, owner="local") == 4
    with pytest.raises(cairn.RequestRunning, match="run 4 is pending") as refused:
        replay(T0 + 63_000)
    assert refused.value.run == 4
    assert replay(T0 + 90_000) == 5  # its engine stopped beating: abandoned

    # Owned by nobody, a live worker that serves the application will take it;
    # one that serves other functions will not.
    alive("worker", T0 + 100_000)
    store.serve_functions("worker", {"other_app": "v1"})
    assert replay(T0 + 100_000) == 6
    store.serve_functions("worker", {"app": "v1"})
    with pytest.raises(cairn.RequestRunning, match="live worker will take it"):
        replay(T0 + 101_000)
    record = store.get_request("req-1")
    assert record is not None
    assert record.run == 6
    assert record.status is RequestStatus.PENDING
