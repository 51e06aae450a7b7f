"""Bulk replay and bulk cancel of the requests a filter of the requests page finds.

The page counts them, asks for a confirmation saying how many and what will run
again, then calls ``POST /ui/bulk`` once per page of ``PAGE`` requests (oldest
first, after a cursor), so that no single call runs long however many there are,
and shows the progress. The set is fixed when the user confirms: the filter, and
only requests created before that instant (``as_of_ms``), so that requests
started meanwhile are left alone. More than ``MAX_REQUESTS`` are refused: the
answer says to narrow the filter.

A replay goes only to finished requests of applications this server serves, and
is refused (skipped, with the reason) for a request whose run is still going; a
cancel goes only to unfinished requests, through the same path as the API's.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse

from cairn import _registry, _request_ops, errors
from cairn.store import Store
from cairn.types import RequestStatus

from .. import _api, _errors
from . import _render, _search

# Requests one bulk action may touch; more are refused.
MAX_REQUESTS = 10_000
# Requests done per call.
PAGE = 100
_MAX_BODY = 16 * 1024
FINISHED = tuple(s for s in RequestStatus if s.finished)
UNFINISHED = tuple(s for s in RequestStatus if not s.finished)
ACTIONS = {"replay": FINISHED, "cancel": UNFINISHED}


def too_many(total: int) -> str:
    """Why a bulk action over ``MAX_REQUESTS`` is refused."""
    return (
        f"this filter finds {total:,} requests; a bulk action takes at most "
        f"{MAX_REQUESTS:,}: narrow it (an application, a status, a time range)"
    )


def _body(raw: bytes) -> tuple[str, _search.Filters, float, tuple[float, str] | None]:
    if len(raw) > _MAX_BODY:
        raise _errors.ApiError(
            413, "body_too_large", "the bulk action's body is too large"
        )
    try:
        data = json.loads(raw)
    except ValueError:
        raise _errors.bad_request("invalid_body", "the body must be JSON") from None
    if not isinstance(data, dict):
        raise _errors.bad_request("invalid_body", "the body must be a JSON object")
    action = data.get("action")
    if action not in ACTIONS:
        raise _errors.bad_request("invalid_body", "action must be replay or cancel")
    as_of_ms = data.get("as_of_ms")
    if (
        not isinstance(as_of_ms, int | float)
        or isinstance(as_of_ms, bool)
        or not math.isfinite(as_of_ms)
    ):
        raise _errors.bad_request("invalid_body", "as_of_ms must be a time in epoch ms")
    query = data.get("query", "")
    if not isinstance(query, str) or len(query) > 4096:
        raise _errors.bad_request(
            "invalid_body", "query must be the page's query string"
        )
    filters = _search.parse(dict(parse_qsl(query.lstrip("?"))), now_ms=as_of_ms)
    after = data.get("after")
    cursor: tuple[float, str] | None = None
    if after is not None:
        if not (
            isinstance(after, list)
            and len(after) == 2
            and isinstance(after[0], int | float)
            and not isinstance(after[0], bool)
            and isinstance(after[1], str)
            and len(after[1]) <= 512
        ):
            raise _errors.bad_request(
                "invalid_body", "after must be the [created_at_ms, id] a page returned"
            )
        cursor = (float(after[0]), after[1])
    return action, filters, float(as_of_ms), cursor


def _do(
    store: Store,
    action: str,
    filters: _search.Filters,
    as_of_ms: float,
    after: tuple[float, str] | None,
) -> dict[str, Any]:
    query = filters.query(ACTIONS[action], before_ms=as_of_ms)
    total = store.count_requests_matching(query) if after is None else None
    if total is not None and total > MAX_REQUESTS:
        raise _errors.bad_request("too_many", too_many(total))
    page = store.request_ids_matching(query, after=after, limit=PAGE)
    done, skipped = 0, []
    for request_id, application, _ in page:
        try:
            if action == "replay":
                if _registry.find(application) is None:
                    skipped.append({"id": request_id, "reason": "not served here"})
                    continue
                _request_ops.replay(store, request_id)
            else:
                _request_ops.cancel(store, request_id)
            done += 1
        except errors.CairnError as error:  # a run still going, or deleted meanwhile
            skipped.append({"id": request_id, "reason": str(error)[:200]})
    last = page[-1] if len(page) == PAGE else None
    return {
        "total": total,
        "done": done,
        "skipped": skipped,
        "after": None if last is None else [last[2], last[0]],
    }


async def bulk(request: Request) -> JSONResponse:
    """``POST /ui/bulk``: one page of a bulk replay or cancel (see the module)."""
    state: _api.ServerState = request.app.state.cairn
    action, filters, as_of_ms, after = _body(await request.body())
    if not filters.any:
        raise _errors.bad_request(
            "no_filter",
            "a bulk action needs a filter: an application, a status, a "
            "search or a time range",
        )
    answer = await state.pool.run(
        functools.partial(
            _do,
            action=action,
            filters=filters,
            as_of_ms=as_of_ms,
            after=after,
        )
    )
    return JSONResponse(answer, headers=_render.HEADERS)
