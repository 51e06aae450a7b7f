"""Helpers of the dashboard tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests.server.support import wait_for

APPS = Path(__file__).with_name("apps.py")
KEY = "dash-s3cret-key"
BIG_MAP = 10_000


def finished(client: httpx.Client, request_id: str, timeout_s: float = 30) -> Any:
    """Wait until a request finished; its metadata."""
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(client.get(f"/requests/{request_id}").json())
        return found["status"] in ("succeeded", "failed", "cancelled")

    wait_for(done, timeout_s)
    return found


def reached(client: httpx.Client, request_id: str, step: int) -> None:
    """Wait until a request reported progress ``step`` (or further)."""

    def done() -> bool:
        progress = client.get(f"/requests/{request_id}").json()["progress"] or {}
        return bool(progress.get("step", 0) >= step)

    wait_for(done)


def view(client: httpx.Client, request_id: str, **params: Any) -> Any:
    """The request page's update (``/view``) as a page that has nothing yet gets it,
    for a view state given as query parameters (``g``, ``p``, ``d``, ``view``...)."""
    answer = client.get(
        f"/ui/requests/{request_id}/view", params={"token": "test", "have": 0, **params}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def tree_html(data: Any) -> str:
    """The rows of an update, in order, as one text."""
    return "".join(data["rows"].get(key, "") for key in data["keys"])


def rows_of(html: str) -> list[str]:
    """The ids of the request rows of a requests page."""
    return re.findall(r'<tr id="r-([0-9a-zA-Z_~.-]+)"', html)
