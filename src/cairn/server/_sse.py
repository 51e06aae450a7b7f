"""A request's events as Server-Sent Events, in Tensorlake's format.

Each event is ``id: <seq>`` (the store's per-request sequence number) and
``data: {"Kind": {...}}`` with no ``event:`` field. A client that reconnects with
``Last-Event-ID: <seq>`` gets exactly the events after it (``0``: all of them);
one past the end of a finished request gets its final ``RequestFinished``.
Without it, a finished request sends its final ``RequestFinished`` at once, and a
running one sends the events of its current run, then new ones as they are
committed. Idle streams get a keep-alive comment every second. The stream ends
after the ``RequestFinished`` that finishes the request: one from a run that a
replay has since superseded is passed on without ending it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from cairn.observability import _metrics
from cairn.store import EventRecord, RequestRecord, Store

from . import _errors, _stores

KEEP_ALIVE_S = 1.0
_BATCH = 500
_FINISHED = "RequestFinished"
_STARTED = "RequestStarted"
_EVENT_ID = re.compile(r"[0-9]{1,18}", re.ASCII)

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def last_event_id(request: Request) -> int | None:
    """The ``Last-Event-ID`` header as a sequence number (None when absent)."""
    values = request.headers.getlist("last-event-id")
    if not values:
        return None
    value = values[0].strip()
    if len(values) > 1 or not _EVENT_ID.fullmatch(value):
        raise _errors.bad_request(
            "bad_last_event_id",
            f"Last-Event-ID must be one event id (a non-negative integer), "
            f"got {', '.join(values)[:40]!r}",
        )
    return int(value)


def frame(event: EventRecord) -> bytes:
    """One SSE message."""
    data = json.dumps({event.kind: event.payload}, separators=(",", ":"))
    return f"id: {event.seq}\ndata: {data}\n\n".encode()


def start_of_stream(store: Store, request_id: str) -> tuple[int, EventRecord | None]:
    """Where a stream without Last-Event-ID starts: after the latest RequestFinished.

    Returns that event too (None if the request never finished).
    """
    seq, latest = 0, None
    while True:
        events = store.list_events(request_id, seq, limit=1000)
        if not events:
            return (latest.seq if latest else 0), latest
        for event in events:
            if event.kind == _FINISHED:
                latest = event
        seq = events[-1].seq


def _poll(
    store: Store, request_id: str, after: int
) -> tuple[RequestRecord | None, list[EventRecord], RequestRecord | None]:
    # The record is read before the events: once it says finished, the events read
    # after it include the RequestFinished committed with that status.
    before = store.get_request(request_id)
    events = store.list_events(request_id, after, limit=_BATCH)
    after_events = (
        store.get_request(request_id)
        if any(event.kind == _FINISHED for event in events)
        else None
    )
    return before, events, after_events


async def events(
    pool: _stores.StorePool,
    watcher: _stores.ChangeWatcher,
    request_id: str,
    after: int,
    only: frozenset[str] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE byte stream of a request's events after sequence number ``after``
    (of the kinds ``only``, if given)."""
    watcher.subscribe()
    if _metrics.M is not None:
        _metrics.M.sse_clients.inc()
    try:
        idle_since = time.monotonic()
        while not watcher.stopping:
            changed = watcher.snapshot()
            before, batch, later = await pool.run(
                functools.partial(_poll, request_id=request_id, after=after)
            )
            if before is None:
                return  # deleted meanwhile
            for index, event in enumerate(batch):
                if only is None or event.kind in only:
                    yield frame(event)
                after = event.seq
                if event.kind == _FINISHED and _ends(later, batch[index + 1 :]):
                    return
            if batch:
                idle_since = time.monotonic()
                continue
            if before.status.finished:
                # Resumed past the end (a Last-Event-ID beyond the last event, the
                # final RequestFinished): the outcome, rather than a stream that
                # ends saying nothing. At the final event itself, nothing more.
                _, finish = await pool.run(
                    functools.partial(start_of_stream, request_id=request_id)
                )
                if finish is not None and finish.seq < after:
                    yield frame(finish)
                return
            wait_s = KEEP_ALIVE_S - (time.monotonic() - idle_since)
            if wait_s <= 0:
                yield b": keep-alive\n\n"
                idle_since = time.monotonic()
                continue
            try:
                await asyncio.wait_for(changed.wait(), timeout=wait_s)
            except TimeoutError:
                pass
    finally:
        watcher.unsubscribe()
        if _metrics.M is not None:
            _metrics.M.sse_clients.dec()


def _ends(record: RequestRecord | None, rest: list[EventRecord]) -> bool:
    """Whether a RequestFinished ends the request (not a run a replay superseded)."""
    if record is None:
        return True
    if any(event.kind == _STARTED for event in rest):
        return False
    return record.status.finished


def response(
    stream: AsyncIterator[bytes], headers: dict[str, Any]
) -> StreamingResponse:
    """A streaming ``text/event-stream`` response."""
    return StreamingResponse(
        stream, media_type="text/event-stream", headers={**HEADERS, **headers}
    )


async def one(event: EventRecord) -> AsyncIterator[bytes]:
    """A stream of a single event (the final one of a finished request)."""
    yield frame(event)
