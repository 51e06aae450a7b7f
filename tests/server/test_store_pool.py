"""Every store the API uses comes from the server's pool, whose size bounds the
connections a server holds (PostgreSQL counts them): no route opens its own."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import cairn.store
from cairn.server import _stores, create_app
from tests.server import apps

_POOL_FILE = _stores.__file__


def _spy_on_open_store(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record, for every store opened, whether the pool opened it."""
    original: Callable[..., Any] = cairn.store.open_store
    opened: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        stack = traceback.extract_stack()
        opened.append(any(frame.filename == _POOL_FILE for frame in stack))
        return original(*args, **kwargs)

    # Every module that imported the function by name gets the spy.
    for module in list(sys.modules.values()):
        if getattr(module, "open_store", None) is original:
            monkeypatch.setattr(module, "open_store", spy)
    return opened


async def _every_route(store_url: str) -> None:
    app = create_app(store_url)
    name = apps.srv_greet._spec.name
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        invoked = await http.post(f"/applications/{name}", json="pool")
        request_id = invoked.json()["request_id"]
        path = f"/applications/{name}/requests/{request_id}"
        assert (await http.get(path)).json()["status"] == "pending"
        assert (await http.get(f"/requests/{request_id}")).status_code == 200
        assert (await http.get(f"/applications/{name}/requests")).status_code == 200
        assert (await http.get(f"{path}/output")).status_code == 409
        assert (await http.get(f"{path}/output/{request_id}")).status_code == 404
        assert (await http.post(f"{path}/cancel")).json()["cancelled"] is True
        assert (await http.get(f"{path}/progress")).status_code == 200
        unknown = await http.post(f"{path}/replay", json={"from_call": "nope"})
        assert unknown.json()["error"]["code"] == "call_not_found"
        assert (await http.post(f"{path}/replay", json={})).json()["run"] == 2
        assert (await http.delete(path)).status_code == 409
        assert (await http.post(f"{path}/cancel")).json()["cancelled"] is True
        assert (await http.delete(path)).status_code == 204
        assert (await http.get(path)).status_code == 404


def test_every_route_uses_the_pool(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = _spy_on_open_store(monkeypatch)
    asyncio.run(_every_route(store_url))
    assert opened, "no store was opened at all"
    assert all(opened), f"{opened.count(False)} of {len(opened)} opened outside"
