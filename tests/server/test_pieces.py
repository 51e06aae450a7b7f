"""The server's pure pieces, without a server: cursors, Accept, SSE framing, hints."""

from __future__ import annotations

import base64
import pickle
from typing import Any

import pytest

from cairn import client
from cairn.server import _auth, _errors, _shapes, _sse
from cairn.store import EventRecord


def test_cursor_round_trip_and_refusals() -> None:
    cursor = _shapes.encode_cursor(1234.5, ["a", "b"])
    assert _shapes.decode_cursor(cursor) == (1234.5, ["a", "b"])
    assert "=" not in cursor
    for bad in [
        "",
        "x" * 20_000,
        "é",
        "!!!!",
        base64.urlsafe_b64encode(b'{"v": 1, "t": "now", "ids": []}').decode(),
        base64.urlsafe_b64encode(b'{"v": 1, "t": 1, "ids": [1]}').decode(),
        base64.urlsafe_b64encode(b'{"v": 1, "t": Infinity, "ids": []}').decode(),
        base64.urlsafe_b64encode(b"[" * 5000).decode(),
    ]:
        with pytest.raises(_errors.ApiError) as info:
            _shapes.decode_cursor(bad)
        assert info.value.status == 400 and info.value.code == "bad_cursor"


def test_sse_frame_and_client_parser_agree() -> None:
    event = EventRecord(
        request_id="r",
        seq=7,
        kind="RequestProgressUpdated",
        payload={"message": "line one\nline two", "step": 1},
        created_at_ms=0.0,
    )
    frame = _sse.frame(event).decode()
    assert frame.startswith("id: 7\ndata: {") and frame.endswith("\n\n")
    assert frame.count("\n") == 3  # the JSON itself has no raw newline
    lines = [*frame.split("\n"), ": keep-alive", "", *frame.split("\n")]
    parsed = list(client._parse_sse(iter(lines)))
    assert parsed == [(7, {event.kind: event.payload})] * 2


def test_hints_a_remote_client_can_load() -> None:
    import datetime

    class Local:
        pass

    assert _shapes._portable(list[dict[str, int]])
    assert _shapes._portable(int | None)
    assert _shapes._portable(datetime.datetime)
    assert not _shapes._portable(Local)
    assert not _shapes._portable(list[Local])
    assert (
        pickle.loads(base64.decodebytes(_shapes._pickled_hint(Local).encode())) is Any
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("example.org", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert _auth.is_loopback(host) is loopback
