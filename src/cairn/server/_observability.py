"""``GET /metrics``: Prometheus text of every process of this server (the server,
its embedded worker and executors), and the store's request counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.observability import _metrics, _streaming
from cairn.store import Store

from . import _api, _errors, _sse
from ._api import ServerState

# What a stream of a request's output sends: its chunks, and the end of each run.
_STREAM_KINDS = frozenset({_streaming.STREAM_CHUNK, _streaming.FINISHED})


class _StoreCounts:
    """Requests in the store by status, read when Prometheus scrapes (every
    worker on the store agrees on these, unlike per-process counters)."""

    def __init__(self, counts: dict[Any, int]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "cairn_store_requests",
            "Requests in the store, by status",
            labels=["status"],
        )
        for status, count in sorted(self._counts.items(), key=lambda kv: str(kv[0])):
            family.add_metric([str(status)], count)
        yield family


async def metrics(request: Request) -> Response:
    """The Prometheus exposition (text format 0.0.4)."""
    state: ServerState = request.app.state.cairn

    def count(store: Store) -> dict[Any, int]:
        return dict(store.count_requests())

    counts = await state.pool.run(count)
    body, content_type = _metrics.exposition([_StoreCounts(counts)])
    return Response(
        body,
        media_type=content_type.split(";")[0],
        headers={"Content-Type": content_type},
    )


async def stream(request: Request) -> Response:
    """``GET .../requests/{request_id}/stream`` (Cairn): the chunks the request's
    calls streamed, from the first (or after ``Last-Event-ID``, or ``?after=N``),
    live until it finishes, as SSE ``RequestStreamChunk`` events; each run's
    ``RequestFinished`` too."""
    state = _api._state(request)
    record = await _api._record(
        state, _api._text(request, "application"), _api._text(request, "request_id")
    )
    after = _sse.last_event_id(request)
    if after is None:
        after = _after_param(request.query_params.get("after", "0"))
    if request.method == "HEAD":
        return Response(media_type="text/event-stream", headers=_sse.HEADERS)
    events = _sse.events(state.pool, state.watcher, record.id, after, _STREAM_KINDS)
    return _sse.response(events, {})


def _after_param(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise _errors.bad_request(
            "bad_after",
            f"after must be an event id (a non-negative integer), got {text[:40]!r}",
        )
    return int(text)
