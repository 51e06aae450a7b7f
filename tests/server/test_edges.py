"""Edges of the API found by an attack (issue 13, item 7): numbers too long to
convert, NUL in ids on both stores, an Idempotency-Key used again with the same
body, Last-Event-ID past the end, OPTIONS, and clients that stop half way."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from cairn.server import _body, _http
from tests.server.support import Server, invoke, sse_events, wait_for

_JSON = {"Content-Type": "application/json"}


def _done(http: httpx.Client, request_id: str) -> None:
    wait_for(lambda: http.get(f"/requests/{request_id}").json()["status"] != "pending")
    wait_for(lambda: http.get(f"/requests/{request_id}").json()["status"] != "running")


def test_numbers_too_long_are_bad_requests(http: httpx.Client) -> None:
    raw = json.dumps({"v": 1, "t": int("9" * 400), "ids": []})
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    for params in (
        {"cursor": cursor},
        {"limit": "1" * 5000},
        {"limit": "0" * 50 + "5"},
    ):
        answer = http.get("/requests", params=params)
        assert answer.status_code == 400, params
        assert answer.json()["error"]["code"] in ("bad_cursor", "bad_limit")
    # The connection was kept: the same client goes on.
    assert http.get("/requests", params={"limit": "5"}).status_code == 200


def test_nul_in_ids_is_a_bad_request_on_every_store(
    store_url: str, start_server: Callable[..., Server]
) -> None:
    server = start_server(store_url=store_url)
    with server.client() as http:
        done = invoke(http, "srv_add", 1)
        _done(http, done)
        for path in (
            "/requests/a%00b",
            "/applications/srv_add/requests/a%00b",
            "/applications/srv_add/requests/a%00b/output",
            f"/applications/srv_add/requests/{done}/output/c%00d",
            "/applications/a%00b/requests",
            "/v1/namespaces/default/requests/a%00b",
            "/ui/requests/a%00b",
            "/ui?application=a%00b",
            "/requests?application=x&cursor=%00",
        ):
            answer = http.get(path)
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["error"]["code"] == "bad_url"
        assert http.delete("/applications/srv_add/requests/a%00b").status_code == 400
        replay = http.post(
            f"/applications/srv_add/requests/{done}/replay",
            json={"from_call": "a\u0000b"},
        )
        assert replay.status_code == 400, replay.text
        assert replay.json()["error"]["code"] == "invalid_body"
        assert http.get("/healthz").status_code == 200


def test_idempotency_key_with_the_same_body_answers_as_the_first_time(
    http: httpx.Client,
) -> None:
    key = f"same-{uuid.uuid4().hex[:12]}"
    headers = {**_JSON, "Idempotency-Key": key}
    body = b'{"x": 2, "y": 3}'
    first = http.post("/applications/srv_shift", content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"request_id": key}
    assert "idempotent-replayed" not in first.headers
    # The same arguments again: as sent, keys reordered, or as a multipart part.
    again = [
        http.post("/applications/srv_shift", content=body, headers=headers),
        http.post("/applications/srv_shift", content=b'{"y":3,"x":2}', headers=headers),
        http.post(
            "/applications/srv_shift",
            files=[("0", ("0", body, "application/json"))],
            headers={"Idempotency-Key": key},
        ),
    ]
    for answer in again:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"request_id": key}
        assert answer.headers["x-request-id"] == key
        assert answer.headers["location"] == first.headers["location"]
        assert answer.headers["idempotent-replayed"] == "true"
    # Another body, or another application, with the key: a conflict.
    for app, other in (
        ("srv_shift", b'{"x": 2, "y": 4}'),
        ("srv_shift", b'{"x": 2.0, "y": 3}'),
        ("srv_greet", b'"x"'),
    ):
        conflict = http.post(f"/applications/{app}", content=other, headers=headers)
        assert conflict.status_code == 409, other
        assert conflict.json()["error"]["code"] == "request_exists"
    _done(http, key)
    assert http.get(f"/applications/srv_shift/requests/{key}/output").json() == {
        "x": 3,
        "y": 4,
    }
    # Ten at once with one key: one request, and all ten get its id.
    key = f"race-{uuid.uuid4().hex[:12]}"
    answers: list[httpx.Response] = []

    def post() -> None:
        with httpx.Client(base_url=str(http.base_url), timeout=30) as client:
            answers.append(
                client.post(
                    "/applications/srv_add",
                    content=b"7",
                    headers={**_JSON, "Idempotency-Key": key},
                )
            )

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 10
    assert {a.json()["request_id"] for a in answers} == {key}


def test_last_event_id_past_the_end_gets_the_outcome(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_add", 4)
    _done(http, request_id)
    progress = f"/applications/srv_add/requests/{request_id}/progress"
    everything = sse_events(http, progress, {"Last-Event-ID": "0"})
    last = everything[-1][0]
    assert "RequestFinished" in everything[-1][1]
    for past in (last + 1, last + 1000, 10**17):
        resumed = sse_events(http, progress, {"Last-Event-ID": str(past)})
        assert resumed == [everything[-1]], past
    # At the final event itself: the client has it; nothing more.
    assert sse_events(http, progress, {"Last-Event-ID": str(last)}) == []


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/applications/srv_add", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/applications/srv_add/requests/x", {"GET", "HEAD", "DELETE", "OPTIONS"}),
        ("/applications/srv_add/requests/x/cancel", {"POST", "OPTIONS"}),
        (
            "/v1/namespaces/default/applications/srv_add",
            {"GET", "HEAD", "POST", "OPTIONS"},
        ),
        ("/ui/login", {"GET", "HEAD", "POST", "OPTIONS"}),
        ("/healthz", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_options_answers_every_method_of_the_route(
    http: httpx.Client, path: str, methods: set[str]
) -> None:
    answer = http.options(path)
    assert answer.status_code == 204
    assert set(answer.headers["allow"].split(", ")) == methods
    other = http.put(path, content=b"")
    assert other.status_code == 405
    assert other.json()["error"]["code"] == "method_not_allowed"
    assert set(other.headers["allow"].split(", ")) == methods


def _closed_after(sock: socket.socket, limit_s: float) -> tuple[float, bytes]:
    """Read until the server closes; how long it took and what it sent."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"still open after {limit_s} s") from None
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


def test_half_sent_requests_are_closed(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    address = (host, int(port))
    # A request head that never ends, and a connection that sends nothing.
    with (
        socket.create_connection(address) as head,
        socket.create_connection(address) as silent,
    ):
        head.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for sock in (head, silent):
            took_s, _ = _closed_after(sock, _http.HEAD_TIMEOUT_S + 10)
            assert took_s < _http.HEAD_TIMEOUT_S + 5
    # A body that stops half way: 408 (JSON), then the connection closes.
    with socket.create_connection(address) as body:
        body.sendall(
            b"POST /applications/srv_add HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[1,"
        )
        took_s, answer = _closed_after(body, _body.BODY_IDLE_S + 10)
        assert took_s < _body.BODY_IDLE_S + 5
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:80]
        assert b'"code":"body_timeout"' in answer
    # Whole requests on a kept-alive connection are unaffected.
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
