"""DNS rebinding and cross-site requests against a server without a key on
loopback (issue 13, item 3): ``Host`` must name the server, requests that change
something must not come from another site or origin, JSON bodies must say so, and
``serve()`` refuses to bind every interface without a key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from cairn import errors
from cairn.server import ServeOptions, _guard, serve
from tests.server.support import Server, invoke, wait_for

_JSON = {"Content-Type": "application/json"}


def _port(server: Server) -> str:
    return server.url.rsplit(":", 1)[1]


def test_host_must_name_the_server(http: httpx.Client, server: Server) -> None:
    port = _port(server)
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.2", "localhost.evil"):
        for path in ("/healthz", "/applications", "/ui"):
            answer = http.get(path, headers={"Host": host})
            assert answer.status_code == 400, (host, path)
            assert answer.json()["error"]["code"] == "bad_host"
    refused = http.post(
        "/applications/srv_add", content=b"1", headers={**_JSON, "Host": "evil.example"}
    )
    assert refused.status_code == 400
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"[::1]:{port}",
        "LOCALHOST",
    ):
        assert http.get("/applications", headers={"Host": host}).status_code == 200


def test_pages_of_other_origins_cannot_act(http: httpx.Client, server: Server) -> None:
    finished = invoke(http, "srv_add", 1)
    wait_for(lambda: http.get(f"/requests/{finished}").json()["status"] == "succeeded")
    running = invoke(http, "srv_slow", "guard")
    port = _port(server)
    base = f"/applications/srv_slow/requests/{running}"
    other_port = {"Origin": "http://localhost:3000"}  # another app on this machine
    for headers in (
        other_port,
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": server.url},
    ):
        for method, path, body in (
            ("POST", "/applications/srv_add", b"1"),
            ("POST", f"{base}/cancel", b""),
            ("POST", f"{base}/replay", b""),
            ("DELETE", f"/applications/srv_add/requests/{finished}", b""),
        ):
            answer = http.request(
                method, path, content=body, headers={**_JSON, **headers}
            )
            assert answer.status_code == 403, (headers, method, path)
            assert answer.json()["error"]["code"] == "cross_origin"
    # Nothing happened: the running request runs, the finished one is still there.
    assert http.get(base).json()["status"] == "running"
    assert http.get(f"/requests/{finished}").status_code == 200
    # The dashboard's own pages (same origin) and non-browser clients may.
    for headers in (
        {"Origin": server.url, "Sec-Fetch-Site": "same-origin"},
        {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"},
        {},
    ):
        answer = http.post(
            "/applications/srv_add", content=b"2", headers={**_JSON, **headers}
        )
        assert answer.status_code == 200, (headers, answer.text)
    # Reading is allowed from anywhere the Host check lets through.
    assert http.get(base, headers=other_port).status_code == 200
    (Path(server.dir) / "guard.go").touch()


def test_bodies_a_form_can_send_are_not_read_as_json(http: httpx.Client) -> None:
    for content_type in (
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
    ):
        answer = http.post(
            "/applications/srv_add",
            content=b"1",
            headers={"Content-Type": content_type},
        )
        assert answer.status_code == 415, content_type
        assert answer.json()["error"]["code"] == "unsupported_media_type"
    for content_type in ("application/json", "application/json; charset=utf-8"):
        ok = http.post(
            "/applications/srv_add",
            content=b"1",
            headers={"Content-Type": content_type},
        )
        assert ok.status_code == 200, ok.text
    request_id = invoke(http, "srv_add", 3)
    wait_for(
        lambda: http.get(f"/requests/{request_id}").json()["status"] == "succeeded"
    )
    replay = f"/applications/srv_add/requests/{request_id}/replay"
    plain = http.post(replay, content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    # An empty body has nothing to read, whatever its type.
    empty = http.post(replay, content=b"", headers={"Content-Type": "text/plain"})
    assert empty.status_code == 200, empty.text


def test_allowed_hosts_adds_names(start_server: Callable[..., Server]) -> None:
    server = start_server(CAIRN_ALLOWED_HOSTS="cairn.test, *.example.org")
    with server.client() as http:
        for host in ("cairn.test", "a.example.org:80", "localhost"):
            assert http.get("/healthz", headers={"Host": host}).status_code == 200
        for host in ("example.org", "evil.example"):
            assert http.get("/healthz", headers={"Host": host}).status_code == 400


def test_allowed_hosts_of_a_bind_address() -> None:
    assert _guard.allowed_hosts("127.0.0.1") == (*_guard.LOOPBACK_HOSTS, "127.0.0.1")
    assert "10.1.2.3" in _guard.allowed_hosts("10.1.2.3", ["x.example"])
    assert _guard.allowed_hosts("0.0.0.0") == ("*",)
    assert _guard.allowed_hosts("::", ["x.example"]) == (
        "x.example",
        *_guard.LOOPBACK_HOSTS,
    )
    assert _guard.host_name("[::1]:80") == "::1"
    assert _guard.host_name("Example.COM.:8080") == "example.com"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1"])
def test_serve_refuses_every_interface_without_a_key(host: str, tmp_path: Path) -> None:
    options = ServeOptions(store_url=f"sqlite:///{tmp_path / 's.db'}", host=host)
    with pytest.raises(errors.SDKUsageError, match="without an API key"):
        serve(options)
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened
