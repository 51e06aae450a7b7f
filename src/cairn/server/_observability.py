"""``GET /metrics``: Prometheus text of every process of this server (the server,
its embedded worker and executors), and the store's request counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from cairn.observability import _metrics
from cairn.store import Store

from ._api import ServerState


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
