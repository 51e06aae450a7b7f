"""The dashboard's routes: the requests page and its live stream, the request
page (``_request_page``), login and logout.

Pages read the store through the server's ``StorePool`` and the same helpers as
the JSON routes (paging); actions (invoke, replay, cancel) are the JSON API's own
routes, called by the pages' script, so that a bad input gets the API's own
message.
"""

from __future__ import annotations

import functools
import hmac
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from cairn import _calls, _registry
from cairn.store import Store
from cairn.types import RequestStatus

from .. import _api, _errors, _sse
from .._routing import resource
from . import (
    _bulk,
    _decoding,
    _render,
    _request_page,
    _search,
    _session,
    _stats,
    _stream,
    _views,
)

PREFIX = "/ui"
_MAX_ID_CHARS = 512


def _state(request: Request) -> _api.ServerState:
    state: _api.ServerState = request.app.state.cairn
    return state


def _status(request: Request) -> RequestStatus | None:
    # A filter form sends "status=" for "any status".
    if not request.query_params.get("status"):
        return None
    return _api._status_param(request)


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path of this server only."""
    if (
        not target
        or not target.startswith(PREFIX)
        or target.startswith("//")
        or "\\" in target
        or any(ord(char) < 0x20 for char in target)
    ):
        return PREFIX
    return target


class Dashboard:
    """The dashboard of one app: its templates, and the key its login checks."""

    def __init__(self, *, api_key: str | None, namespace: str) -> None:
        self._key = None if api_key is None else api_key.encode()
        self.templates = _render.Templates(namespace=namespace, auth=bool(api_key))
        self.values = _decoding.Values()
        self.requests = _request_page.RequestPages(self.templates, self.values)

    def routes(self) -> list[BaseRoute]:
        """The dashboard's routes (``/`` and everything under ``/ui``)."""
        req = f"{PREFIX}/requests/{{request_id}}"
        return [
            resource("/", get=self.home),
            resource(PREFIX, get=self.requests_page),
            resource(f"{PREFIX}/", get=self.home),
            resource(f"{PREFIX}/stream", get=self.stream),
            resource(f"{PREFIX}/bulk", post=_bulk.bulk),
            resource(f"{PREFIX}/login", get=self.login_form, post=self.login),
            resource(f"{PREFIX}/logout", post=self.logout),
            resource(req, get=self.requests.page),
            resource(f"{req}/view", get=self.requests.view),
            resource(f"{req}/replay-plan", get=self.requests.replay_plan),
            resource(f"{req}/calls/{{call_id}}", get=self.requests.call),
            Mount(f"{PREFIX}/static", app=StaticFiles(directory=_render.STATIC)),
            resource(f"{PREFIX}/{{path:path}}", get=self.no_page),
        ]

    # -- pages ---------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """``/``: the requests page."""
        return RedirectResponse(PREFIX, status_code=303)

    async def requests_page(self, request: Request) -> Response:
        """Every application with its recent requests, and a page of requests: the
        newest (paged by cursor, followed live), or those a search finds."""
        state = _state(request)
        now_ms = _calls.now_ms()
        try:
            limit, cursor = _api._page_params(request)
            filters = _search.parse(request.query_params, now_ms)
        except _errors.ApiError as error:
            if "application/json" in request.headers.get("accept", ""):
                raise  # a script's request: the API's JSON error
            return self._error(error.status, "Bad filter", error.message)
        status = RequestStatus(filters.status) if filters.status else None
        application = filters.application or None
        specs = sorted(_registry.applications(), key=lambda s: s.name)

        def read(store: Store) -> Any:
            more = False
            if filters.searching:
                found = store.search_requests(
                    filters.query(),
                    order=filters.order,
                    offset=filters.page * limit,
                    limit=limit + 1,
                )
                page, next_cursor, more = found[:limit], None, len(found) > limit
            else:
                page, next_cursor = _api._page(
                    store, application, status, limit, cursor
                )
            counts = None
            if filters.any:
                counts = {
                    action: store.count_requests_matching(
                        filters.query(statuses, before_ms=now_ms)
                    )
                    for action, statuses in _bulk.ACTIONS.items()
                }
            recent = {
                spec.name: store.list_requests(
                    application=spec.name, limit=_views.RECENT_PER_APP
                )
                for spec in specs
            }
            stats = _stats.figures(store, now_ms)
            return page, next_cursor, more, counts, recent, stats

        page, next_cursor, more, counts, recent, stats = await state.pool.run(read)
        rows = [_views.request_row(r, now_ms) for r in page]
        applications = [
            _views.application(
                spec,
                [_views.request_row(r, now_ms) for r in recent[spec.name]],
            )
            for spec in specs
        ]
        names = [spec.name for spec in specs]
        invoke_app = application if application in names else names[0] if names else ""
        if application and application not in names:
            names.append(application)
        return self.templates.page(
            "requests.html",
            rows=rows,
            applications=applications,
            application_names=names,
            invoke_app=invoke_app,
            statuses=[str(s) for s in RequestStatus],
            filters=filters,
            windows=_search.WINDOWS,
            orders=_search.ORDERS,
            application=application or "",
            status=str(status) if status else "",
            limit=limit,
            first_page=cursor is None and filters.page == 0,
            live=cursor is None and not filters.searching,
            next_cursor=next_cursor,
            more=more,
            bulk=counts,
            bulk_max=_bulk.MAX_REQUESTS,
            as_of_ms=now_ms,
            since_ms=rows[0].created_at_ms if rows else 0.0,
            app_stats=stats,
            stats_windows=_stats.WINDOWS,
            stats_limit=_stats.DURATIONS_LIMIT,
        )

    async def stream(self, request: Request) -> Response:
        """``/ui/stream``: live updates of the requests page (SSE)."""
        state = _state(request)
        status = _status(request)
        watch = [
            item
            for item in request.query_params.get("watch", "").split(",")
            if 0 < len(item) <= _MAX_ID_CHARS
        ]
        since_ms: float | None = None
        raw_since = request.query_params.get("since")
        if raw_since:
            try:
                since_ms = float(raw_since)
            except ValueError:
                since_ms = math.nan
            if not math.isfinite(since_ms):
                raise _errors.bad_request(
                    "bad_since", "since must be a time in epoch milliseconds"
                )
        render_row = functools.partial(self.templates.text, "_request_row.html")
        events = _stream.requests(
            state.pool,
            state.watcher,
            lambda row: render_row(row=row),
            watch=watch,
            application=request.query_params.get("application") or None,
            status=status,
            since_ms=since_ms,
        )
        return _sse.response(events, {})

    async def no_page(self, request: Request) -> Response:
        """Any other path under ``/ui``."""
        return self._error(404, "Not found", f"No page {request.url.path}.")

    # -- login ---------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """The form asking for the API key (with auth off: the requests page)."""
        if self._key is None:
            return RedirectResponse(PREFIX, status_code=303)
        target = _safe_next(request.query_params.get("next"))
        expired = _session.cookie_value(request.scope["headers"]) is not None
        return self.templates.page(
            "login.html", next=target, problem="", expired=expired
        )

    async def login(self, request: Request) -> Response:
        """Check the key; on success set the session cookie and go on."""
        if self._key is None:
            return RedirectResponse(PREFIX, status_code=303)
        scheme = request.url.scheme
        if not _session.same_origin(request.scope["headers"], scheme):
            return self._error(
                403, "Refused", "The login form must be sent from this server's page."
            )
        form = await request.form()
        target = _safe_next(str(form.get("next") or ""))
        given = str(form.get("api_key") or "")
        if not hmac.compare_digest(given.encode(), self._key):
            return self.templates.page(
                "login.html",
                status_code=401,
                next=target,
                problem="wrong API key",
                expired=False,
            )
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(
            _session.COOKIE,
            _session.token(self._key),
            max_age=_session.SESSION_S,
            path="/",
            httponly=True,
            samesite="strict",
            secure=scheme == "https",
        )
        return answer

    async def logout(self, request: Request) -> Response:
        """Forget the session cookie."""
        answer = RedirectResponse(f"{PREFIX}/login", status_code=303)
        answer.delete_cookie(
            _session.COOKIE, path="/", httponly=True, samesite="strict"
        )
        return answer

    # -- helpers ---------------------------------------------------------------------

    def _error(self, status: int, title: str, message: str, hint: str = "") -> Response:
        return self.templates.error(status, title, message, hint)
