"""Bearer-token auth with CAIRN_API_KEY, and the loopback rule without it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import httpx
import pytest

import cairn
from cairn.client import Client, ServerError
from tests.server.support import APPS, CAIRN, Server, invoke, sse_events

KEY = "s3cret-key"


@pytest.fixture
def secured(start_server: Callable[..., Server]) -> Server:
    return start_server(api_key=KEY)


def test_every_route_but_healthz_needs_the_key(secured: Server) -> None:
    with httpx.Client(base_url=secured.url, timeout=30) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        for method, path in [
            ("GET", "/applications"),
            ("GET", "/openapi.json"),
            ("POST", "/applications/srv_greet"),
            ("GET", "/v1/namespaces/default/applications/srv_greet/requests"),
            ("GET", "/applications/srv_greet/requests/x/progress"),
            ("GET", "/no/such/route"),
        ]:
            response = anonymous.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")
        for header in ["Bearer wrong", "Basic czNjcmV0LWtleQ==", "Bearer", KEY]:
            response = anonymous.get("/applications", headers={"Authorization": header})
            assert response.status_code == 401, header


def test_the_right_key_works(secured: Server) -> None:
    with secured.client() as http:
        request_id = invoke(http, "srv_greet", "auth")
        events = sse_events(
            http, f"/applications/srv_greet/requests/{request_id}/progress"
        )
        assert "RequestFinished" in events[-1][1]
        output = http.get(f"/applications/srv_greet/requests/{request_id}/output")
        assert output.json() == "hello auth"
        document = http.get("/openapi.json").json()
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    request = cairn.run_remote_application(
        "srv_greet", "remote", cairn_server=secured.url, cairn_api_key=KEY
    )
    assert request.output() == "hello remote"
    with (
        Client(secured.url, api_key="wrong") as client,
        pytest.raises(ServerError) as info,
    ):
        client.applications()
    assert info.value.status_code == 401


def test_auth_off_by_default(server: Server) -> None:
    assert httpx.get(f"{server.url}/applications").status_code == 200
    assert "auth is OFF" in server.logs()


def test_no_key_refuses_a_public_address(tmp_path: object) -> None:
    result = subprocess.run(
        [CAIRN, "serve", str(APPS), "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "CAIRN_STORE": "sqlite:///refused.db"},
        cwd=str(tmp_path),
    )
    assert result.returncode == 2
    assert "without an API key" in result.stderr
    assert "--allow-no-auth" in result.stderr
