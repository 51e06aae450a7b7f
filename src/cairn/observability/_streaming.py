"""Streamed output: ``ctx.stream.write(chunk)`` sends text, bytes or JSON to every
client following the request, as it is made (a model's tokens, a log tail).

A chunk is an event of the request (``RequestStreamChunk``), committed to its
journal like a progress update: it carries a sequence number, so a client that
reconnects with ``Last-Event-ID`` misses none, and a client that comes late
reads every chunk from the start. Chunks are journaled once: a replay that
serves a call from its checkpoint does not run it, so it streams nothing again,
and the chunks the call wrote when it ran stay readable. A call that runs again
(a retry, a replay of a failed call) streams again; each chunk names its run
and attempt, so a reader can tell them apart.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Iterator
from typing import Any

from cairn import _events, errors
from cairn._execution import frames as _frames
from cairn.store import Event

STREAM_CHUNK = "RequestStreamChunk"
FINISHED = "RequestFinished"
MAX_CHUNK_BYTES = 1 << 20


def chunk_body(chunk: object) -> dict[str, Any]:
    """The chunk's part of the event: ``{"text": str}``, ``{"bytes_base64": str}``
    or ``{"json": value}``.

    Raises:
        SDKUsageError: the chunk is not str, bytes or a JSON value, or is too big.
    """
    body: dict[str, Any]
    if isinstance(chunk, str):
        body, size = {"text": chunk}, len(chunk.encode(errors="surrogatepass"))
    elif isinstance(chunk, bytes | bytearray | memoryview):
        raw = bytes(chunk)
        body, size = {"bytes_base64": base64.b64encode(raw).decode()}, len(raw)
    elif chunk is None or isinstance(chunk, bool | int | float | list | dict):
        if isinstance(chunk, float) and not math.isfinite(chunk):
            raise errors.SDKUsageError(
                f"a stream chunk must be JSON; {chunk!r} is not a JSON number"
            )
        try:
            text = json.dumps(chunk, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise errors.SDKUsageError(
                f"a stream chunk must be str, bytes or a JSON value; this one is "
                f"not JSON: {error}"
            ) from None
        body, size = {"json": chunk}, len(text)
    else:
        raise errors.SDKUsageError(
            "a stream chunk must be str, bytes or a JSON value (dict, list, number, "
            f"bool, None), got {type(chunk).__name__}"
        )
    if size > MAX_CHUNK_BYTES:
        raise errors.SDKUsageError(
            f"a stream chunk is {size} bytes; the limit is {MAX_CHUNK_BYTES} (write "
            "it in smaller pieces)"
        )
    return body


def value_of(payload: dict[str, Any]) -> Any:
    """The chunk a ``RequestStreamChunk`` payload carries (str, bytes or JSON)."""
    if "text" in payload:
        return payload["text"]
    if "bytes_base64" in payload:
        return base64.b64decode(payload["bytes_base64"])
    return payload.get("json")


def chunks(events: Iterable[dict[str, Any]]) -> Iterator[Any]:
    """The chunks among events in their wire form (``{"Kind": payload}``)."""
    for event in events:
        payload = event.get(STREAM_CHUNK)
        if payload is not None:
            yield value_of(payload)


class RequestStream:
    """Output streamed to the request's clients while the call runs
    (``RequestContext.get().stream``)."""

    def __init__(self, frame: _frames.Frame) -> None:
        self._frame = frame

    def write(self, chunk: str | bytes | Any) -> None:
        """Send ``chunk`` (text, bytes or a JSON value) to every client following
        the request; it is committed to the request's journal first.

        Raises:
            SDKUsageError: the chunk is not str, bytes or JSON, or is over 1 MiB.
        """
        body = chunk_body(chunk)
        frame = self._frame
        runtime = _frames.process()
        now = runtime.clock.now_ms()
        payload = {
            "request_id": frame.run.request_id,
            "function_name": frame.key.function,
            "function_run_id": frame.key.id,
            "run": frame.run.run,
            "attempt": frame.attempt,
            **body,
            "created_at": _events.iso(now),
        }
        runtime.store.append_events(
            frame.run.request_id,
            [Event(kind=STREAM_CHUNK, payload=payload, created_at_ms=now)],
        )
