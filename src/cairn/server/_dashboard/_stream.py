"""One live stream for the requests page: status changes, progress, new requests.

A browser holds at most six HTTP/1.1 connections per host, so the page does not
open one event stream per running request. It opens this one, naming the
requests it shows unfinished (``watch``) and, on the newest page, the creation
time of its newest row (``since``). Whenever the store changes (the server's
``ChangeWatcher``), at most every ``_MIN_INTERVAL_S``, the stream re-reads those
requests and the newest ones matching the page's filters, and sends:

- ``event: row`` ``{"id", "html", "new"}`` for a request that is new or changed
  status (the row rendered by the page's own template);
- ``event: progress`` ``{"id", "percent", "counts", "message"}`` when only its
  progress moved.

A request that finished is no longer watched. The stream sends a keep-alive
comment when idle and ends when the client goes away or the server stops.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from cairn import _calls
from cairn.store import RequestRecord, Store
from cairn.types import RequestStatus

from .. import _sse, _stores
from . import _views

# At most this many requests are watched (a page shows at most 100).
MAX_WATCHED = 200
# Reads of the store per stream are at least this far apart.
_MIN_INTERVAL_S = 0.2
# How many of the newest requests are looked at for new rows.
_NEWEST = 20

Read = tuple[list[RequestRecord], list[RequestRecord]]


def _read(
    store: Store,
    ids: list[str],
    known: set[str],
    application: str | None,
    status: RequestStatus | None,
    since_ms: float | None,
) -> Read:
    watched = []
    for request_id in ids:
        record = store.get_request(request_id)
        if record is not None:
            watched.append(record)
    newest = []
    if since_ms is not None:
        for record in store.list_requests(
            application=application, status=status, limit=_NEWEST
        ):
            if record.created_at_ms >= since_ms and record.id not in known:
                newest.append(record)
    return watched, newest


def _frame(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def requests(
    pool: _stores.StorePool,
    watcher: _stores.ChangeWatcher,
    render_row: Callable[[_views.RequestRow], str],
    *,
    watch: list[str],
    application: str | None,
    status: RequestStatus | None,
    since_ms: float | None,
) -> AsyncIterator[bytes]:
    """The byte stream of the requests page's live updates."""
    watching = list(dict.fromkeys(watch))[:MAX_WATCHED]
    known = set(watching)
    sent: dict[str, tuple[str, Any]] = {}
    watcher.subscribe()
    try:
        idle_since = time.monotonic()
        while not watcher.stopping:
            changed = watcher.snapshot()
            watched, newest = await pool.run(
                functools.partial(
                    _read,
                    ids=list(watching),
                    known=set(known),
                    application=application,
                    status=status,
                    since_ms=since_ms,
                )
            )
            now_ms = _calls.now_ms()
            frames: list[bytes] = []
            for record in reversed(newest):  # oldest first: each goes on top
                known.add(record.id)
                if not record.status.finished and len(watching) < MAX_WATCHED:
                    watching.append(record.id)
                row = _views.request_row(record, now_ms)
                sent[record.id] = (row.status, _progress_key(row))
                frames.append(
                    _frame("row", {"id": row.id, "html": render_row(row), "new": True})
                )
            for record in watched:
                row = _views.request_row(record, now_ms)
                key = (row.status, _progress_key(row))
                previous = sent.get(record.id)
                if previous is None or previous[0] != row.status:
                    html = render_row(row)
                    frames.append(
                        _frame("row", {"id": row.id, "html": html, "new": False})
                    )
                elif previous != key and row.progress is not None:
                    frames.append(
                        _frame("progress", {"id": row.id, **row.progress.as_json()})
                    )
                sent[record.id] = key
                if row.finished:
                    watching.remove(record.id)
            for frame in frames:
                yield frame
            if frames:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= _sse.KEEP_ALIVE_S:
                yield b": keep-alive\n\n"
                idle_since = time.monotonic()
            try:
                await asyncio.wait_for(changed.wait(), timeout=_sse.KEEP_ALIVE_S)
            except TimeoutError:
                pass
            await asyncio.sleep(_MIN_INTERVAL_S)
    finally:
        watcher.unsubscribe()


def _progress_key(row: _views.RequestRow) -> Any:
    progress = row.progress
    if progress is None:
        return None
    return (progress.step, progress.total, progress.message)
