"""``ctx.stream.write`` sends chunks to every client following the request: a
local iterator, ``RemoteRequest.stream()``, and an SSE route that resumes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

import cairn
from cairn import errors
from cairn.observability import _streaming
from tests.observability import streaming_app
from tests.server.support import launch, sse_events

APP = Path(__file__).with_name("streaming_app.py")
WORDS = ["alpha ", "beta ", "gamma "]
STREAMED = [*WORDS, b"\x00\xff", {"words": 3}]


def test_a_local_request_streams_text_bytes_and_json(run, tmp_path, monkeypatch):
    monkeypatch.setattr(streaming_app, "FLAG_DIR", tmp_path)
    (tmp_path / "open-alpha").touch()
    request = run(streaming_app.stream_story, "alpha beta gamma")
    assert request.output() == "3 words, gate open"
    assert list(request.stream()) == [*STREAMED, "gate open"]


def test_a_replay_serves_checkpoints_and_keeps_what_they_streamed(
    run, tmp_path, monkeypatch
):
    monkeypatch.setattr(streaming_app, "FLAG_DIR", tmp_path)
    request = run(streaming_app.stream_story, "alpha beta gamma")
    with pytest.raises(cairn.RequestFailed):
        request.output()
    assert list(request.stream()) == STREAMED  # the gate streamed nothing
    (tmp_path / "open-alpha").touch()
    replayed = request.replay()
    assert replayed.output() == "3 words, gate open"
    # stream_words was served from its checkpoint: not run, not streamed again;
    # what it streamed when it ran is still there, then the gate's new chunk.
    assert list(replayed.stream()) == [*STREAMED, "gate open"]
    chunks = [e.payload for e in replayed.events() if e.kind == _streaming.STREAM_CHUNK]
    assert [c["run"] for c in chunks] == [1] * 5 + [2]
    # Attempt numbers count over every run: the gate's second attempt is 2.
    assert [c["attempt"] for c in chunks] == [1] * 5 + [2]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("set", "not JSON"),
        ("object", "must be str, bytes or a JSON value"),
    ],
)
def test_a_chunk_that_is_not_text_bytes_or_json_is_refused(run, kind, message):
    output = run(streaming_app.stream_bad, kind).output()
    assert output.startswith("SDKUsageError") and message in output


def test_chunk_checks():
    assert _streaming.chunk_body("hé") == {"text": "hé"}
    assert _streaming.value_of(_streaming.chunk_body(b"\x01")) == b"\x01"
    assert _streaming.value_of(_streaming.chunk_body([1, None])) == [1, None]
    for bad in (float("nan"), {1: object()}, 1j, "x" * (2 << 20)):
        with pytest.raises(errors.SDKUsageError):
            _streaming.chunk_body(bad)


@pytest.fixture
def server(tmp_path):
    running = launch(tmp_path / "srv", apps=APP, concurrency=2)
    yield running
    running.stop()


def test_remote_clients_follow_the_stream_live_and_resume(server):
    with server.client() as http:
        remote = cairn.run_remote_application(
            "stream_slowly", 5, cairn_server=server.url
        )
        seen: list[tuple[float, str]] = []

        def follow() -> None:
            for chunk in remote.stream():
                seen.append((time.monotonic(), chunk))

        thread = threading.Thread(target=follow)
        thread.start()
        thread.join(30)
        assert [chunk for _, chunk in seen] == [f"tick {i}" for i in range(5)]
        # Live: the chunks arrived spread over the run, not all at its end.
        assert seen[-1][0] - seen[0][0] > 0.5
        path = f"/applications/stream_slowly/requests/{remote.id}/stream"
        events = sse_events(http, path)
        assert [next(iter(e)) for _, e in events] == [
            *["RequestStreamChunk"] * 5,
            "RequestFinished",
        ]
        third = events[2][0]
        resumed = sse_events(http, path, headers={"Last-Event-ID": str(third)})
        assert [e["RequestStreamChunk"]["text"] for _, e in resumed[:-1]] == [
            "tick 3",
            "tick 4",
        ]
        by_query = sse_events(http, f"{path}?after={third}")
        assert by_query == resumed
        # The progress stream carries the chunks too, between the other events.
        progress = sse_events(
            http,
            f"/applications/stream_slowly/requests/{remote.id}/progress",
            headers={"Last-Event-ID": "0"},
        )
        assert sum("RequestStreamChunk" in e for _, e in progress) == 5


@pytest.mark.parametrize(
    ("query", "headers"),
    [("?after=-1", {}), ("?after=x", {}), ("", {"Last-Event-ID": "nope"})],
)
def test_bad_resume_points_are_400s(server, query, headers):
    with server.client() as http:
        remote = cairn.run_remote_application(
            "stream_slowly", 1, cairn_server=server.url
        )
        path = f"/applications/stream_slowly/requests/{remote.id}/stream{query}"
        answer = http.get(path, headers=headers)
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] in ("bad_after", "bad_last_event_id")
        missing = http.get("/applications/stream_slowly/requests/nope/stream")
        assert missing.status_code == 404
        json.loads(missing.text)
