"""Helpers of the server tests: start ``cairn serve``, invoke, read SSE streams."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.ports import free_port

CAIRN = str(Path(sys.executable).parent / "cairn")
APPS = Path(__file__).with_name("apps.py")
_START_TIMEOUT_S = 30.0


@dataclass
class Server:
    """A running ``cairn serve``."""

    url: str
    dir: Path
    process: subprocess.Popen[bytes]
    log: Path
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on this server (with its key, if any)."""
        return httpx.Client(
            base_url=self.url, headers=self.headers, timeout=30.0, **kwargs
        )

    def logs(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL the whole group if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def launch(
    directory: Path,
    *,
    api_key: str | None = None,
    concurrency: int = 2,
    extra_args: tuple[str, ...] = (),
    store_url: str | None = None,
    apps: Path = APPS,
    host: str = "127.0.0.1",
    prefix: Sequence[str] = (),
    **extra_env: str,
) -> Server:
    """Start ``cairn serve`` on a free port and wait until /healthz answers.

    ``prefix`` runs the command through another (``ip netns exec NAME ...``);
    ``extra_env`` is added to the server's environment.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "SRV_TEST_DIR": str(directory),
        "CAIRN_CONCURRENCY": str(concurrency),
        **extra_env,
    }
    for name in ("CAIRN_API_KEY", "CAIRN_STORE", "CAIRN_API_URL"):
        env.pop(name, None)
    if api_key is not None:
        env["CAIRN_API_KEY"] = api_key
    log = directory / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                *prefix,
                CAIRN,
                "serve",
                str(apps),
                "--host",
                host,
                "--store",
                store_url or f"sqlite:///{directory / 's.db'}",
                "--port",
                str(port),
                "--grace",
                "1",
                *extra_args,
            ],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(
        url=f"http://{host}:{port}",
        dir=directory,
        process=process,
        log=log,
        api_key=api_key,
        headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
    )
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cairn serve exited:\n{server.logs()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"cairn serve did not answer in time:\n{server.logs()}")


def invoke(client: httpx.Client, app: str, body: Any = None, **kwargs: Any) -> str:
    """POST a JSON body (the first argument) and return the request id."""
    content = b"" if body is None else json.dumps(body).encode()
    response = client.post(
        f"/applications/{app}",
        content=content,
        headers={"Content-Type": "application/json", **kwargs.pop("headers", {})},
        **kwargs,
    )
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


def sse_events(
    client: httpx.Client,
    path: str,
    headers: dict[str, str] | None = None,
    limit: int | None = None,
) -> list[tuple[int, dict[str, Any]]]:
    """Read an SSE stream (until it ends, or ``limit`` events) with httpx-sse."""
    from httpx_sse import connect_sse

    found: list[tuple[int, dict[str, Any]]] = []
    with connect_sse(client, "GET", path, headers=headers or {}) as source:
        assert source.response.status_code == 200, source.response.read()
        for event in source.iter_sse():
            found.append((int(event.id), json.loads(event.data)))
            if limit is not None and len(found) >= limit:
                break
    return found


def wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def kinds(events: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """The event kinds, in order."""
    return [next(iter(event)) for _, event in events]


def invoke_kwargs(client: httpx.Client, app: str, **arguments: Any) -> str:
    """POST keyword arguments as multipart JSON parts; the request id."""
    files = [
        (name, (name, json.dumps(value).encode(), "application/json"))
        for name, value in arguments.items()
    ]
    response = client.post(f"/applications/{app}", files=files)
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id
