"""The HTTP API on a real ``cairn serve``: invoke, stream, output, replay, cancel..."""

from __future__ import annotations

import json
import pickle
import uuid
from pathlib import Path
from typing import Any

import httpx
from starlette.routing import BaseRoute, Mount, Route

from cairn.server import create_app
from cairn.server._dashboard import Dashboard
from tests.server.support import (
    Server,
    invoke,
    invoke_kwargs,
    kinds,
    sse_events,
    wait_for,
)

REQ = "/applications/{app}/requests/{id}"


def _path(app: str, request_id: str, tail: str = "") -> str:
    return REQ.format(app=app, id=request_id) + tail


def _finished(http: httpx.Client, app: str, request_id: str) -> dict[str, Any]:
    sse_events(http, _path(app, request_id, "/progress"))  # ends when it finishes
    metadata: dict[str, Any] = http.get(_path(app, request_id)).json()
    return metadata


def test_healthz_applications_and_manifest(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    apps = {a["name"]: a for a in http.get("/applications").json()["applications"]}
    assert {"srv_greet", "srv_add", "srv_squares", "srv_slow"} <= set(apps)
    assert apps["srv_greet"]["description"] == "Greets someone"
    assert apps["srv_add"]["parameters"] == ["a", "b"]
    manifest = http.get("/applications/srv_add").json()
    assert manifest["name"] == "srv_add"
    assert manifest["entrypoint"]["input_serializer"] == "json"
    assert manifest["entrypoint"]["function_name"] == "srv_add"
    namespaced = http.get("/v1/namespaces/default/applications").json()
    assert namespaced == http.get("/applications").json()


def _served(routes: list[BaseRoute], prefix: str = "") -> dict[str, set[str]]:
    """Every path the router serves and its methods (Mounts unfolded)."""
    found: dict[str, set[str]] = {}
    for route in routes:
        if isinstance(route, Mount) and route.routes:
            for path, methods in _served(route.routes, prefix + route.path).items():
                found.setdefault(path, set()).update(methods)
        elif isinstance(route, Route):
            endpoint = route.endpoint
            methods = {
                name
                for name in ("get", "post", "put", "patch", "delete")
                if isinstance(endpoint, type) and hasattr(endpoint, name)
            } or {m.lower() for m in route.methods or ()} - {"head"}
            found.setdefault(prefix + route.path, set()).update(methods)
    return found


def test_openapi_describes_every_route(
    server: Server, http: httpx.Client, tmp_path: Path
) -> None:
    document = http.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    documented = {
        path: set(methods) - {"head"} for path, methods in document["paths"].items()
    }
    app = create_app(f"sqlite:///{tmp_path / 'routes.db'}")
    html = _served(Dashboard(api_key=None, namespace="default").routes())
    served = {
        path: methods
        for path, methods in _served(app.routes).items()
        if path not in html
    }
    assert documented == served
    req = "/applications/{application}/requests/{request_id}"
    assert set(document["paths"][f"{req}/output"]) == {"get", "head"}
    assert set(documented["/v1/namespaces/{namespace}" + req]) == {"get", "delete"}
    assert len(served) >= 24  # the routes above, with and without the namespace


def test_invoke_stream_output(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_squares", 4)
    events = sse_events(http, _path("srv_squares", request_id, "/progress"))
    seqs = [seq for seq, _ in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    names = kinds(events)
    assert names[0] == "RequestStarted" and names[-1] == "RequestFinished"
    progress = [
        e["RequestProgressUpdated"] for _, e in events if "RequestProgressUpdated" in e
    ]
    assert [(p["step"], p["total"], p["message"]) for p in progress] == [
        (i, 4, f"squaring {i}") for i in range(4)
    ]
    assert progress[2]["attributes"] == {"i": "2"}
    assert names.count("FunctionRunCompleted") == 5
    finished = events[-1][1]["RequestFinished"]
    assert finished["outcome"] == "success"
    assert finished["output"]["body"] == [0, 1, 4, 9]
    output = http.get(_path("srv_squares", request_id, "/output"))
    assert output.status_code == 200
    assert output.headers["content-type"].startswith("application/json")
    assert output.json() == [0, 1, 4, 9]
    metadata = http.get(_path("srv_squares", request_id)).json()
    assert metadata["id"] == request_id
    assert metadata["outcome"] == "success"
    assert metadata["status"] == "succeeded"
    assert metadata["request_error"] is None
    runs = metadata["function_runs"]
    assert len(runs) == 5
    app_run = next(r for r in runs if r["id"] == request_id)
    assert app_run["status"] == "completed" and app_run["outcome"] == "success"
    assert len(app_run["child_function_run_ids"]) == 4
    assert all(r["allocations"][0]["outcome"] == "success" for r in runs)
    # One call's own output, pickled.
    child = next(r for r in runs if r["name"] == "srv_square" and r["seq"] == 3)
    raw = http.get(_path("srv_squares", request_id, f"/output/{child['id']}"))
    assert raw.headers["content-type"] == "application/python-pickle"
    assert pickle.loads(raw.content) == 9


def test_invoke_with_event_stream_accept(http: httpx.Client) -> None:
    with http.stream(
        "POST",
        "/v1/namespaces/default/applications/srv_greet",
        content=b'"stream"',
        headers={"Accept": "text/event-stream", "Content-Type": "application/json"},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        assert response.headers["location"].endswith(f"/requests/{request_id}")
        lines = list(response.iter_lines())
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    ids = [int(line[4:]) for line in lines if line.startswith("id: ")]
    assert len(ids) == len(data) and ids == sorted(ids)
    assert "RequestStarted" in data[0]
    assert data[-1]["RequestFinished"]["output"]["body"] == "hello stream"


def test_multipart_arguments(http: httpx.Client) -> None:
    def run(files: list[tuple[str, tuple[str, bytes, str]]]) -> Any:
        response = http.post("/applications/srv_add", files=files)
        assert response.status_code == 200, response.text
        request_id = response.json()["request_id"]
        _finished(http, "srv_add", request_id)
        return http.get(_path("srv_add", request_id, "/output")).json()

    json_part = "application/json"
    assert run([("0", ("0", b"2", json_part)), ("1", ("1", b"3", json_part))]) == 5
    assert run([("1", ("1", b"2", json_part)), ("2", ("2", b"4", json_part))]) == 6
    assert run([("0", ("0", b"2", json_part)), ("b", ("b", b"10", json_part))]) == 12
    # Tensorlake's default part type is octet-stream; the value is still JSON.
    assert run([("a", ("a", b"7", "application/octet-stream"))]) == 7


def test_pydantic_model_input_and_output(http: httpx.Client) -> None:
    response = http.post(
        "/applications/srv_shift",
        files=[
            ("point", ("point", b'{"x": 1, "y": 2}', "application/json")),
            ("by", ("by", b"10", "application/json")),
        ],
    )
    request_id = response.json()["request_id"]
    _finished(http, "srv_shift", request_id)
    assert http.get(_path("srv_shift", request_id, "/output")).json() == {
        "x": 11,
        "y": 12,
    }


def test_reconnect_with_last_event_id(server: Server, http: httpx.Client) -> None:
    request_id = invoke(http, "srv_slow", "resume")
    progress = _path("srv_slow", request_id, "/progress")
    first = sse_events(http, progress, headers={"Last-Event-ID": "0"}, limit=3)
    assert [seq for seq, _ in first] == [1, 2, 3]
    # Disconnected; later events keep coming. Reconnect after the last one seen.
    wait_for(lambda: len(sse_events(http, progress, {"Last-Event-ID": "0"}, 8)) == 8)
    second = sse_events(http, progress, headers={"Last-Event-ID": "3"}, limit=4)
    assert [seq for seq, _ in second] == [4, 5, 6, 7]
    assert second[0][1] == sse_events(http, progress, {"Last-Event-ID": "3"}, 1)[0][1]
    (server.dir / "resume.go").touch()
    rest = sse_events(http, progress, headers={"Last-Event-ID": "7"})
    assert rest[0][0] == 8
    assert [seq for seq, _ in rest] == list(range(8, 8 + len(rest)))
    assert kinds(rest)[-1] == "RequestFinished"
    everything = sse_events(http, progress, headers={"Last-Event-ID": "0"})
    assert everything == first + second + rest


def test_finished_request_sends_its_final_event_at_once(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_greet", "late")
    _finished(http, "srv_greet", request_id)
    events = sse_events(http, _path("srv_greet", request_id, "/progress"))
    assert kinds(events) == ["RequestFinished"]
    assert events[0][1]["RequestFinished"]["outcome"] == "success"
    # Resuming after the final event: nothing more, and the stream ends.
    last = events[0][0]
    assert (
        sse_events(
            http,
            _path("srv_greet", request_id, "/progress"),
            {"Last-Event-ID": str(last)},
        )
        == []
    )


def test_keep_alive_comments(http: httpx.Client) -> None:
    request_id = invoke_kwargs(http, "srv_ticker", count=1, interval_s=1.6)
    comments = 0
    with http.stream("GET", _path("srv_ticker", request_id, "/progress")) as stream:
        for line in stream.iter_lines():
            if line.startswith(":"):
                comments += 1
    assert comments >= 1


def test_replay_over_http(server: Server, http: httpx.Client) -> None:
    key = f"rp{uuid.uuid4().hex[:8]}"
    (server.dir / f"{key}.broken").touch()
    request_id = invoke(http, "srv_pipeline", key)
    metadata = _finished(http, "srv_pipeline", request_id)
    assert metadata["outcome"] == {"failure": "function_error"}
    assert metadata["request_error"] is None
    failed = next(r for r in metadata["function_runs"] if r["name"] == "srv_publish")
    assert failed["outcome"] == "failure"
    assert failed["failure_reason"] == "function_error"
    assert failed["allocations"][0]["error"]["type"] == "ConnectionError"
    assert http.get(_path("srv_pipeline", request_id, "/output")).status_code == 404

    (server.dir / f"{key}.broken").unlink()
    answer = http.post(_path("srv_pipeline", request_id, "/replay"), json={})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"request_id": request_id, "run": 2}
    metadata = _finished(http, "srv_pipeline", request_id)
    assert metadata["outcome"] == "success" and metadata["run"] == 2
    assert http.get(_path("srv_pipeline", request_id, "/output")).json() == (
        f"published fetched {key}"
    )
    effects = (server.dir / "effects.log").read_text().splitlines()
    assert effects.count(f"fetch {key}") == 1  # served from its checkpoint
    assert effects.count(f"publish {key}") == 2
    fetch = next(r for r in metadata["function_runs"] if r["name"] == "srv_fetch")
    assert fetch["served_from_checkpoint"] is True

    # A fork from the fetch call runs it again.
    answer = http.post(
        _path("srv_pipeline", request_id, "/replay"),
        json={"from_call": fetch["id"], "strict": True},
    )
    assert answer.json()["run"] == 3
    assert _finished(http, "srv_pipeline", request_id)["outcome"] == "success"
    effects = (server.dir / "effects.log").read_text().splitlines()
    assert effects.count(f"fetch {key}") == 2


def test_progress_stream_spans_a_replay(server: Server, http: httpx.Client) -> None:
    key = f"rs{uuid.uuid4().hex[:8]}"
    (server.dir / f"{key}.broken").touch()
    request_id = invoke(http, "srv_pipeline", key)
    _finished(http, "srv_pipeline", request_id)
    (server.dir / f"{key}.broken").unlink()
    http.post(_path("srv_pipeline", request_id, "/replay"))
    # From the start: the first run's RequestFinished does not end the stream.
    events = sse_events(
        http, _path("srv_pipeline", request_id, "/progress"), {"Last-Event-ID": "0"}
    )
    names = kinds(events)
    assert names.count("RequestStarted") == 2
    assert names.count("RequestFinished") == 2
    assert events[-1][1]["RequestFinished"]["outcome"] == "success"


def test_replay_refusals(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_slow", "refuse")
    wait_for(
        lambda: http.get(_path("srv_slow", request_id)).json()["status"] == "running"
    )
    running = http.post(_path("srv_slow", request_id, "/replay"))
    assert running.status_code == 409
    assert running.json()["error"]["code"] == "request_running"
    unknown = http.post(
        _path("srv_slow", request_id, "/replay"), json={"from_call": "nope"}
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "call_not_found"
    http.post(_path("srv_slow", request_id, "/cancel"))


def test_cancel_over_http(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_slow", "cancel-me")
    progress = _path("srv_slow", request_id, "/progress")
    assert kinds(sse_events(http, progress, {"Last-Event-ID": "0"}, limit=2)) == [
        "RequestStarted",
        "RequestProgressUpdated",
    ]
    answer = http.post(_path("srv_slow", request_id, "/cancel"))
    assert answer.status_code == 200
    assert answer.json() == {
        "request_id": request_id,
        "status": "cancelled",
        "cancelled": True,
    }
    events = sse_events(http, progress, {"Last-Event-ID": "2"})
    assert events[-1][1]["RequestFinished"]["outcome"] == {"failure": "cancelled"}
    metadata = http.get(_path("srv_slow", request_id)).json()
    assert metadata["status"] == "cancelled"
    again = http.post(_path("srv_slow", request_id, "/cancel")).json()
    assert again["cancelled"] is False
    output = http.get(_path("srv_slow", request_id, "/output"))
    assert output.status_code == 404
    assert output.json()["error"]["code"] == "no_output"


def test_output_states(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_slow", "states")
    running = http.get(_path("srv_slow", request_id, "/output"))
    assert running.status_code == 409
    assert running.json()["error"]["code"] == "request_not_finished"
    assert http.head(_path("srv_slow", request_id, "/output")).status_code == 204
    deleting = http.delete(_path("srv_slow", request_id))
    assert deleting.status_code == 409
    http.post(_path("srv_slow", request_id, "/cancel"))
    done = invoke(http, "srv_greet", "head")
    _finished(http, "srv_greet", done)
    head = http.head(_path("srv_greet", done, "/output"))
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == len(b'"hello head"')


def test_request_error_metadata(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_refuse", "not today")
    metadata = _finished(http, "srv_refuse", request_id)
    assert metadata["outcome"] == {"failure": "request_error"}
    assert metadata["failure_reason"] == "request_error"
    assert metadata["request_error"] == {
        "function_name": "srv_refuse",
        "message": "not today",
    }
    run = metadata["function_runs"][0]
    assert run["failure_reason"] == "request_error"


def test_delete(http: httpx.Client) -> None:
    request_id = invoke(http, "srv_greet", "gone")
    _finished(http, "srv_greet", request_id)
    assert http.delete(_path("srv_greet", request_id)).status_code == 204
    missing = http.get(_path("srv_greet", request_id))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "request_not_found"
    assert http.delete(_path("srv_greet", request_id)).status_code == 404


def test_idempotency_key(http: httpx.Client) -> None:
    key = f"idem-{uuid.uuid4().hex[:12]}"
    request_id = invoke(http, "srv_greet", "once", headers={"Idempotency-Key": key})
    assert request_id == key
    again = http.post(
        "/applications/srv_greet",
        content=b'"twice"',
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "request_exists"
    assert key in again.json()["error"]["message"]
    _finished(http, "srv_greet", key)
    assert http.get(_path("srv_greet", key, "/output")).json() == "hello once"


def test_pagination(http: httpx.Client) -> None:
    mine = [invoke(http, "srv_add", n) for n in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = http.get("/applications/srv_add/requests", params=params).json()
        assert len(page["requests"]) <= 3
        assert page["prev_cursor"] is None
        seen += [r["id"] for r in page["requests"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages >= 3
    assert len(seen) == len(set(seen))
    positions = [seen.index(request_id) for request_id in mine]
    assert positions == sorted(positions, reverse=True)  # newest first
    everything = http.get("/requests", params={"limit": 100}).json()["requests"]
    assert set(mine) <= {r["id"] for r in everything}
    found = http.get(f"/requests/{mine[0]}").json()
    assert found["application_name"] == "srv_add"


def test_unknown_namespace(http: httpx.Client) -> None:
    answer = http.get("/v1/namespaces/other/applications")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "namespace_not_found"


def test_request_headers_reach_the_request(http: httpx.Client) -> None:
    def header(name: str) -> Any:
        request_id = invoke(
            http,
            "srv_headers",
            name,
            headers={"X-Trace": "abc", "Authorization": "Bearer secret"},
        )
        _finished(http, "srv_headers", request_id)
        return http.get(_path("srv_headers", request_id, "/output")).json()

    assert header("x-trace") == "abc"
    assert header("authorization") is None  # credentials are not passed on


def test_invoke_takes_a_priority_header(server: Server, http: httpx.Client) -> None:
    import sqlite3

    request_id = invoke(http, "srv_squares", 2, headers={"X-Cairn-Priority": "7"})
    with sqlite3.connect(server.dir / "s.db") as conn:
        rows = conn.execute(
            "SELECT priority FROM requests WHERE id = ?", (request_id,)
        ).fetchall()
    assert rows == [(7,)]
    for bad in ("high", "1.5", "99999999999"):
        answer = http.post(
            "/applications/srv_squares",
            content=b"2",
            headers={"Content-Type": "application/json", "X-Cairn-Priority": bad},
        )
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["error"]["code"] == "invalid_priority"
