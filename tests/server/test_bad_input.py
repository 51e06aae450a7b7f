"""Every malformed request gets a 4xx with ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.server.support import Server, invoke, sse_events

JSON = {"Content-Type": "application/json"}
BOUNDARY = "cairnboundary"
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def _multipart(*parts: tuple[str, bytes]) -> bytes:
    body = b""
    for name, data in parts:
        body += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n'
                "Content-Type: application/json\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{BOUNDARY}--\r\n".encode()


def _assert_error(
    response: httpx.Response, status: int, code: str, *words: str
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error


INVOKE_CASES: list[tuple[str, dict[str, str], bytes, int, str, tuple[str, ...]]] = [
    ("bad JSON", JSON, b'{"name": ', 400, "bad_json", ("not valid JSON", "line 1")),
    ("NaN", JSON, b"NaN", 400, "bad_json", ("NaN",)),
    ("not UTF-8", JSON, b'"\xff\xfe"', 400, "bad_json", ()),
    ("too deep", JSON, b"[" * 100_000 + b"]" * 100_000, 400, "bad_json", ("deeply",)),
    ("lone surrogate", JSON, b'"\\ud800"', 400, "invalid_input", ("surrogates",)),
    ("wrong type", JSON, b'{"not": "a string"}', 400, "invalid_input", ("'name'",)),
    (
        "multipart without boundary",
        {"Content-Type": "multipart/form-data"},
        b"x",
        400,
        "bad_content_type",
        ("boundary",),
    ),
    (
        "truncated multipart",
        MULTIPART,
        _multipart(("0", b'"x"'))[:-20],
        400,
        "bad_multipart",
        (),
    ),
    ("garbage multipart", MULTIPART, b"garbage", 400, "bad_multipart", ()),
    (
        "multipart gap",
        MULTIPART,
        _multipart(("0", b'"a"'), ("2", b'"b"')),
        400,
        "bad_multipart",
        ("without gaps",),
    ),
    (
        "multipart bad name",
        MULTIPART,
        _multipart(("a b", b'"x"')),
        400,
        "bad_multipart",
        ("'a b'",),
    ),
    (
        "multipart duplicate",
        MULTIPART,
        _multipart(("name", b'"a"'), ("name", b'"b"')),
        400,
        "bad_multipart",
        ("two parts",),
    ),
    (
        "multipart bad JSON part",
        MULTIPART,
        _multipart(("name", b"{")),
        400,
        "bad_json",
        ("part 'name'",),
    ),
]


@pytest.mark.parametrize(
    ("headers", "body", "status", "code", "words"),
    [case[1:] for case in INVOKE_CASES],
    ids=[case[0] for case in INVOKE_CASES],
)
def test_bad_invoke_bodies(
    http: httpx.Client,
    headers: dict[str, str],
    body: bytes,
    status: int,
    code: str,
    words: tuple[str, ...],
) -> None:
    response = http.post("/applications/srv_greet", content=body, headers=headers)
    _assert_error(response, status, code, *words)


def test_missing_argument(http: httpx.Client) -> None:
    response = http.post("/applications/srv_greet", content=b"", headers=JSON)
    _assert_error(response, 400, "invalid_input", "missing", "'name'")


def test_body_over_10_mib(http: httpx.Client) -> None:
    big = b'"' + b"x" * (10 * 1024 * 1024) + b'"'
    response = http.post("/applications/srv_greet", content=big, headers=JSON)
    _assert_error(response, 413, "body_too_large", "10 MiB")

    def chunks() -> Any:  # no Content-Length: counted while reading
        for _ in range(11):
            yield b"x" * (1024 * 1024)

    response = http.post("/applications/srv_greet", content=chunks(), headers=JSON)
    _assert_error(response, 413, "body_too_large")


def test_body_just_under_the_limit_is_accepted(http: httpx.Client) -> None:
    body = b'"' + b"y" * (10 * 1024 * 1024 - 2) + b'"'
    response = http.post("/applications/srv_greet", content=body, headers=JSON)
    assert response.status_code == 200, response.text


HEADER_CASES = [
    (
        "idempotency key too long",
        {"Idempotency-Key": "k" * 37},
        400,
        "bad_idempotency_key",
    ),
    ("idempotency key empty", {"Idempotency-Key": ""}, 400, "bad_idempotency_key"),
    ("idempotency key slash", {"Idempotency-Key": "a/b"}, 400, "bad_idempotency_key"),
    ("idempotency key dot-dot", {"Idempotency-Key": ".."}, 400, "bad_idempotency_key"),
    ("accept html", {"Accept": "text/html"}, 406, "not_acceptable"),
    ("accept json q=0", {"Accept": "application/json;q=0"}, 406, "not_acceptable"),
]


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [case[1:] for case in HEADER_CASES],
    ids=[case[0] for case in HEADER_CASES],
)
def test_bad_invoke_headers(
    http: httpx.Client, headers: dict[str, str], status: int, code: str
) -> None:
    response = http.post(
        "/applications/srv_greet", content=b'"x"', headers={**JSON, **headers}
    )
    _assert_error(response, status, code)


def test_accept_negotiation(http: httpx.Client) -> None:
    response = http.post(
        "/applications/srv_greet",
        content=b'"x"',
        headers={**JSON, "Accept": "text/html, application/json;q=0.5"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"


def test_unknown_things(http: httpx.Client) -> None:
    _assert_error(
        http.post("/applications/nope", content=b'"x"', headers=JSON),
        404,
        "application_not_found",
        "'nope'",
        "srv_greet",
    )
    _assert_error(http.get("/applications/nope"), 404, "application_not_found")
    _assert_error(http.get("/applications/nope/requests"), 404, "application_not_found")
    _assert_error(
        http.get("/applications/srv_greet/requests/missing"),
        404,
        "request_not_found",
        "'missing'",
    )
    for tail in ("/progress", "/output", "/output/c", "/replay", "/cancel"):
        method = "POST" if tail in ("/replay", "/cancel") else "GET"
        response = http.request(
            method, f"/applications/srv_greet/requests/missing{tail}"
        )
        _assert_error(response, 404, "request_not_found")
    _assert_error(http.get("/requests/missing"), 404, "request_not_found")
    _assert_error(http.get("/no/such/route"), 404, "not_found", "/no/such/route")
    _assert_error(http.put("/applications"), 405, "method_not_allowed", "PUT")


def test_request_of_another_application(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_greet", "x")
    _assert_error(
        http.get(f"/applications/srv_add/requests/{request_id}"),
        404,
        "request_not_found",
    )
    sse_events(http, f"/applications/srv_greet/requests/{request_id}/progress")
    _assert_error(
        http.get(f"/applications/srv_greet/requests/{request_id}/output/nope"),
        404,
        "call_not_found",
    )


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not-a-cursor"},
        {"cursor": "eyJ2IjogMn0"},  # valid base64 JSON, wrong version
        {"cursor": "%%%"},
        {"cursor": ""},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"status": "sleeping"},
    ],
)
def test_bad_list_parameters(http: httpx.Client, params: dict[str, str]) -> None:
    response = http.get("/applications/srv_greet/requests", params=params)
    code = "bad_" + next(iter(params))
    _assert_error(response, 400, code)


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1" * 30, "1, 2"])
def test_bad_last_event_id(http: httpx.Client, value: str) -> None:
    request_id = invoke(http, "srv_greet", "x")
    response = http.get(
        f"/applications/srv_greet/requests/{request_id}/progress",
        headers={"Last-Event-ID": value},
    )
    _assert_error(response, 400, "bad_last_event_id")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[1]", "invalid_body"),
        (b'{"from_call": 5}', "invalid_body"),
        (b'{"strict": "yes"}', "invalid_body"),
        (b'{"form_call": "x"}', "invalid_body"),
        (b"{", "bad_json"),
    ],
)
def test_bad_replay_bodies(http: httpx.Client, body: bytes, code: str) -> None:
    request_id = invoke(http, "srv_greet", "x")
    response = http.post(
        f"/applications/srv_greet/requests/{request_id}/replay",
        content=body,
        headers=JSON,
    )
    _assert_error(response, 400, code)


def test_the_server_survives_all_of_it(server: Server, http: httpx.Client) -> None:
    assert server.process.poll() is None
    assert http.get("/healthz").status_code == 200
    assert "Traceback" not in server.logs()
