"""``run_remote_application``, ``RemoteRequest``, ``Client`` and ``cairn requests --server``."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

import cairn
from cairn import _remote
from cairn.client import Client, ServerError
from cairn.types import CallStatus, RequestStatus
from tests.server.support import CAIRN, Server, wait_for


def test_run_remote_application(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAIRN_API_URL", server.url)
    request = cairn.run_remote_application("srv_add", 2, b=40)
    assert isinstance(request, cairn.RemoteRequest)
    assert request.output() == 42
    assert request.status() is RequestStatus.SUCCEEDED
    events = list(request.progress())
    assert next(iter(events[0])) == "RequestStarted"
    assert next(iter(events[-1])) == "RequestFinished"
    calls = request.calls()
    assert [c.function for c in calls] == ["srv_add"]
    assert calls[0].status is CallStatus.SUCCEEDED
    assert calls[0].attempts[0].outcome == "success"
    found = _remote.get_remote_request(request.id)
    assert found.application == "srv_add" and found.output() == 42
    # With CAIRN_API_URL set, get_request looks the request up on the server.
    again = cairn.get_request(request.id)
    assert isinstance(again, cairn.RemoteRequest) and again.output() == 42


def test_remote_failures(server: Server) -> None:
    refused = cairn.run_remote_application("srv_refuse", "why", cairn_server=server.url)
    with pytest.raises(cairn.RequestError, match="why"):
        refused.output()
    boom = cairn.run_remote_application("srv_boom", cairn_server=server.url)
    with pytest.raises(cairn.RequestFailed) as info:
        boom.output()
    assert info.value.reason == "function_error"
    with pytest.raises(ServerError) as bad:
        cairn.run_remote_application("srv_add", "not a number", cairn_server=server.url)
    assert bad.value.status_code == 400 and bad.value.error_code == "invalid_input"
    with pytest.raises(cairn.RequestNotFound):
        _remote.get_remote_request("no-such-request", server=server.url)


def test_remote_cancel_and_replay(server: Server) -> None:
    slow = cairn.run_remote_application(
        "srv_slow", "remote-cancel", cairn_server=server.url
    )
    events = slow.progress()
    assert next(iter(next(events))) == "RequestStarted"
    slow.cancel()
    assert next(iter(list(events)[-1])) == "RequestFinished"
    assert slow.status() is RequestStatus.CANCELLED
    slow.cancel()  # a no-op once finished

    key = f"remote{uuid.uuid4().hex[:8]}"
    (server.dir / f"{key}.broken").touch()
    request = cairn.run_remote_application("srv_pipeline", key, cairn_server=server.url)
    with pytest.raises(cairn.RequestFailed):
        request.output()
    (server.dir / f"{key}.broken").unlink()
    assert request.replay() is request
    assert request.output() == f"published fetched {key}"
    served = [c for c in request.calls() if c.served_from_checkpoint]
    assert [c.function for c in served] == ["srv_fetch"]


def test_idempotency_key_and_function_objects(server: Server) -> None:
    from tests.server import apps

    key = f"fn-{uuid.uuid4().hex[:8]}"
    request = cairn.run_remote_application(
        apps.srv_greet, "object", cairn_server=server.url, cairn_idempotency_key=key
    )
    assert request.id == key
    assert request.output() == "hello object"
    with pytest.raises(ServerError) as info:
        cairn.run_remote_application(
            apps.srv_greet, "again", cairn_server=server.url, cairn_idempotency_key=key
        )
    assert info.value.status_code == 409
    with pytest.raises(cairn.SDKUsageError):
        cairn.run_remote_application(apps.srv_square, 3, cairn_server=server.url)


def test_output_waits_for_the_end(server: Server) -> None:
    request = cairn.run_remote_application(
        "srv_slow", "waited", cairn_server=server.url
    )
    threading.Timer(0.5, (server.dir / "waited.go").touch).start()
    assert request.output() == "released waited"


def test_events_resume_after_a_dropped_connection(server: Server) -> None:
    with Client(server.url) as client:
        request_id = client.invoke("srv_slow", ["dropped"])
        first = []
        for seq, event in client.events("srv_slow", request_id):
            first.append((seq, event))
            if len(first) == 3:
                break  # the client goes away mid-stream
        (server.dir / "dropped.go").touch()
        rest = list(client.events("srv_slow", request_id, after=first[-1][0]))
        seqs = [seq for seq, _ in first + rest]
        assert seqs == list(range(1, len(seqs) + 1))
        assert "RequestFinished" in rest[-1][1]
        page = client.requests("srv_slow", limit=1)
        assert page["requests"][0]["id"] == request_id


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CAIRN, "requests", *args, "--server", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.dir,
    )


def test_cli_requests_with_server(server: Server) -> None:
    key = f"cli{uuid.uuid4().hex[:8]}"
    (server.dir / f"{key}.broken").touch()
    with Client(server.url) as client:
        request_id = client.invoke("srv_pipeline", [key])
        wait_for(lambda: client.request(None, request_id)["status"] == "failed")
    listed = _cli(server, "list", "--app", "srv_pipeline")
    assert listed.returncode == 0, listed.stderr
    assert request_id in listed.stdout and "function_error" in listed.stdout
    shown = _cli(server, "show", request_id)
    assert shown.returncode == 0, shown.stderr
    assert "srv_publish" in shown.stdout and "ConnectionError" in shown.stdout
    (server.dir / f"{key}.broken").unlink()
    replayed = _cli(server, "replay", request_id)
    assert replayed.returncode == 0, replayed.stderr
    assert "published fetched" in replayed.stdout
    assert "served 1 from checkpoints in run 2" in replayed.stdout
    missing = _cli(server, "show", "nope")
    assert missing.returncode == 2 and "no request with id 'nope'" in missing.stderr

    with Client(server.url) as client:
        slow = client.invoke("srv_slow", [f"{key}-slow"])
    cancelled = _cli(server, "cancel", slow)
    assert cancelled.returncode == 0 and f"cancelled request {slow}" in cancelled.stdout
    again = _cli(server, "cancel", slow)
    assert "already finished" in again.stdout


def test_cairn_api_url_picks_the_server_unless_a_store_is_given(
    server: Server, tmp_path: Path
) -> None:
    env = {**os.environ, "CAIRN_API_URL": server.url}
    env.pop("CAIRN_STORE", None)
    remote = subprocess.run(
        [CAIRN, "requests", "list", "--limit", "3"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert remote.returncode == 0, remote.stderr
    assert "srv_" in remote.stdout
    local = subprocess.run(
        [CAIRN, "requests", "list", "--store", f"sqlite:///{tmp_path / 'x.db'}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert local.returncode == 0, local.stderr
    assert "no requests in" in local.stdout
