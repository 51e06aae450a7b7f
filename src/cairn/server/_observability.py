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
from ._routing import Answer, Operation, Param, error

# What a stream of a request's output sends: its chunks, and the end of each run.
_STREAM_KINDS = frozenset({_streaming.STREAM_CHUNK, _streaming.FINISHED})


class _StoreCounts:
    """Figures every worker on the store agrees on, read when Prometheus scrapes:
    requests by status, calls waiting for an executor by function."""

    def __init__(self, requests: dict[Any, int], waiting: dict[str, int]) -> None:
        self._requests = requests
        self._waiting = waiting

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        requests = GaugeMetricFamily(
            "cairn_store_requests",
            "Requests in the store, by status",
            labels=["status"],
        )
        for status, count in sorted(self._requests.items(), key=lambda kv: str(kv[0])):
            requests.add_metric([str(status)], count)
        yield requests
        waiting = GaugeMetricFamily(
            "cairn_calls_waiting",
            "Calls queued for an executor (new, or a retry in its backoff), by function",
            labels=["function"],
        )
        for function, count in sorted(self._waiting.items()):
            waiting.add_metric([function], count)
        yield waiting


async def metrics(request: Request) -> Response:
    """The Prometheus exposition (text format 0.0.4)."""
    state: ServerState = request.app.state.cairn

    def count(store: Store) -> _StoreCounts:
        return _StoreCounts(dict(store.count_requests()), store.pending_by_function())

    counts = await state.pool.run(count)
    body, content_type = _metrics.exposition([counts])
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


_RESUME = Param(
    name="Last-Event-ID",
    where="header",
    description="resume after this event",
    schema={"type": "string", "pattern": "^[0-9]{1,18}$"},
)
_SSE = {"text/event-stream": {"schema": {"type": "string"}}}

#: the routes of this module, for the route table (``_routes``)
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        method="get",
        path="/metrics",
        handler=metrics,
        operation_id="metrics",
        summary="Prometheus metrics of the server and its worker (Cairn)",
        answers={
            200: Answer(
                description="Prometheus text format 0.0.4",
                content={"text/plain": {"schema": {"type": "string"}}},
            )
        },
        namespaced=False,
    ),
    Operation(
        method="get",
        path="/applications/{application}/requests/{request_id}/stream",
        handler=stream,
        operation_id="streamOutput",
        summary="Chunks the request's calls streamed (ctx.stream.write), from the "
        "first, as Server-Sent Events (Cairn)",
        parameters=(
            Param(name="application", where="path", description="application name"),
            Param(name="request_id", where="path", description="request id"),
            _RESUME,
            Param(
                name="after",
                where="query",
                description="start after this event (default 0)",
                schema={"type": "string", "pattern": "^[0-9]{1,18}$"},
            ),
        ),
        answers={
            200: Answer(description="event stream", content=_SSE),
            400: error("bad Last-Event-ID or after"),
            404: error("unknown namespace, application or request"),
        },
    ),
)
