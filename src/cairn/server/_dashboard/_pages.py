"""The dashboard's routes: pages, the fragments the pages load, login and logout.

Pages read the store through the server's ``StorePool`` and the same helpers as
the JSON routes (paging, ``Request.calls()``); actions (invoke, replay, cancel)
are the JSON API's own routes, called by the pages' script, so that a bad input
gets the API's own message.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import math
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from cairn import _calls, _registry, _request, errors
from cairn.store import EventRecord, RequestRecord, Store
from cairn.types import CallStatus, RequestStatus

from .. import _api, _errors, _sse
from .._routing import resource
from . import (
    _decoding,
    _journal,
    _render,
    _session,
    _stream,
    _tree,
    _values,
    _views,
)

PREFIX = "/ui"
_PROGRESS_LINES = 20
_MAX_ID_CHARS = 512


@dataclass(frozen=True, kw_only=True)
class _Loaded:
    record: RequestRecord
    calls: list[_request.CallInfo]
    tree: _tree.Tree


def _state(request: Request) -> _api.ServerState:
    state: _api.ServerState = request.app.state.cairn
    return state


def _text(request: Request, name: str) -> str:
    value = request.path_params.get(name) or request.query_params.get(name) or ""
    try:
        value.encode()
    except UnicodeEncodeError:
        return ""
    return value[:_MAX_ID_CHARS]


def _offset(request: Request) -> int:
    raw = request.query_params.get("offset", "0")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise _errors.bad_request("bad_offset", "offset must be an integer >= 0")
    return int(raw)


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


def _read_request(store: Store, request_id: str) -> Any:
    record = store.get_request(request_id)
    if record is None:
        return None
    return record, store.list_calls(request_id), store.list_attempts(request_id)


class Dashboard:
    """The dashboard of one app: its templates, and the key its login checks."""

    def __init__(self, *, api_key: str | None, namespace: str) -> None:
        self._key = None if api_key is None else api_key.encode()
        self.templates = _render.Templates(namespace=namespace, auth=bool(api_key))
        self.values = _decoding.Values()

    def routes(self) -> list[BaseRoute]:
        """The dashboard's routes (``/`` and everything under ``/ui``)."""
        req = f"{PREFIX}/requests/{{request_id}}"
        return [
            resource("/", get=self.home),
            resource(PREFIX, get=self.requests_page),
            resource(f"{PREFIX}/", get=self.home),
            resource(f"{PREFIX}/stream", get=self.stream),
            resource(f"{PREFIX}/login", get=self.login_form, post=self.login),
            resource(f"{PREFIX}/logout", post=self.logout),
            resource(req, get=self.request_page),
            resource(f"{req}/main", get=self.request_main),
            resource(f"{req}/rows", get=self.rows),
            resource(f"{req}/calls/{{call_id}}", get=self.call),
            Mount(f"{PREFIX}/static", app=StaticFiles(directory=_render.STATIC)),
            resource(f"{PREFIX}/{{path:path}}", get=self.no_page),
        ]

    # -- pages ---------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        """``/``: the requests page."""
        return RedirectResponse(PREFIX, status_code=303)

    async def requests_page(self, request: Request) -> Response:
        """Every application with its recent requests, and a page of requests."""
        state = _state(request)
        try:
            limit, cursor = _api._page_params(request)
            status = _status(request)
        except _errors.ApiError as error:
            return self._error(error.status, "Bad filter", error.message)
        application = request.query_params.get("application") or None
        specs = sorted(_registry.applications(), key=lambda s: s.name)

        def read(store: Store) -> Any:
            page, next_cursor = _api._page(store, application, status, limit, cursor)
            recent = {
                spec.name: store.list_requests(
                    application=spec.name, limit=_views.RECENT_PER_APP
                )
                for spec in specs
            }
            return page, next_cursor, recent

        page, next_cursor, recent = await state.pool.run(read)
        now_ms = _calls.now_ms()
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
            application=application or "",
            status=str(status) if status else "",
            limit=limit,
            first_page=cursor is None,
            next_cursor=next_cursor,
            since_ms=rows[0].created_at_ms if rows else 0.0,
        )

    async def request_page(self, request: Request) -> Response:
        """One request: summary, error, input and output, call tree and timeline."""
        view = await self._view(request)
        if view is None:
            return self._missing(request)
        return self.templates.page("request.html", page=view)

    async def request_main(self, request: Request) -> Response:
        """The request page's changing part, for live refreshes."""
        view = await self._view(request)
        if view is None:
            return self._missing(request)
        return self.templates.page("_request_main.html", page=view)

    async def rows(self, request: Request) -> Response:
        """More rows of the call tree: a map group's items or a parent's children."""
        offset = _offset(request)
        loaded = await self._load(request)
        if loaded is None:
            return self._missing(request)
        group, parent = _text(request, "group"), _text(request, "parent")
        if group:
            only = request.query_params.get("only") == "problems"
            rows = loaded.tree.group_rows(group, offset, only)
        elif not parent or parent in loaded.tree.by_id:
            rows = loaded.tree.child_rows(parent or None, offset)
        else:
            rows = []
        return self.templates.page(
            "_rows.html",
            rows=rows,
            request_id=loaded.record.id,
            scale=loaded.tree.scale,
        )

    async def call(self, request: Request) -> Response:
        """One call, opened: attempts, arguments, output, progress messages."""
        loaded = await self._load(request)
        if loaded is None:
            return self._missing(request)
        call_id = _text(request, "call_id")
        call = loaded.tree.by_id.get(call_id)
        if call is None:
            return self._error(
                404,
                "No such call",
                f"Request {loaded.record.id} has no call {call_id}.",
            )

        def read(store: Store) -> Any:
            args = store.get_call_args(call_id)
            output = (
                store.get_call_output(call_id)
                if call.status is CallStatus.SUCCEEDED and call.kind != "app"
                else None
            )
            events = _journal.tail(
                store,
                loaded.record.id,
                kind=_journal.PROGRESS,
                call_id=call_id,
                limit=_PROGRESS_LINES,
            )
            return args, output, _journal.progress_lines(events)

        args, output, lines = await _state(request).pool.run(read)
        record = loaded.record
        names = _views.parameter_names(call.function)
        shown_output: _values.Shown | None = None
        if call.kind == "app":  # the request's own input and output (JSON)
            arguments = await self.values.arguments(record.input, names)
            if call.status is CallStatus.SUCCEEDED:
                shown_output = await self.values.json(record.output)
        else:
            arguments, shown_output = await self.values.call(args, output, names)
            if call.status is not CallStatus.SUCCEEDED:
                shown_output = None
        details = _views.call_details(call, arguments, shown_output, lines, record)
        return self.templates.page(
            "_call.html",
            details=details,
            path=loaded.tree.path(call_id),
            request_id=loaded.record.id,
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
        return self.templates.page("login.html", next=target, problem="")

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
                "login.html", status_code=401, next=target, problem="wrong API key"
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

    async def _load(self, request: Request) -> _Loaded | None:
        state = _state(request)
        request_id = _text(request, "request_id")
        # Both read every call of the request: at once, in two threads.
        reading = asyncio.gather(
            state.pool.run(functools.partial(_read_request, request_id=request_id)),
            state.pool.call(_request.Request(request_id, state.store_url).calls),
            return_exceptions=True,
        )
        found, calls = await reading
        if found is None or isinstance(calls, errors.RequestNotFound):
            return None  # none, or deleted meanwhile
        if isinstance(found, BaseException):
            raise found
        if isinstance(calls, BaseException):
            raise calls
        record, records, attempts = found
        groups = {call.id: call.group_id for call in records}
        tree = _tree.Tree(record, calls, groups, attempts, _calls.now_ms())
        return _Loaded(record=record, calls=calls, tree=tree)

    async def _view(self, request: Request) -> _views.RequestPage | None:
        state = _state(request)
        request_id = _text(request, "request_id")

        def read(store: Store) -> tuple[int, list[EventRecord]]:
            seq = _journal.last_seq(store, request_id)
            events = _journal.tail(
                store,
                request_id,
                kind=_journal.PROGRESS,
                limit=_PROGRESS_LINES,
                end=seq,
            )
            return seq, events

        # The events first, then the records: the page shows every event up to
        # `seq` (its progress as of `seq`), so that its script skips them when its
        # event stream starts from the run's first.
        seq, events = await state.pool.run(read)
        loaded = await self._load(request)
        if loaded is None:
            return None
        record = loaded.record
        arguments = await self.values.arguments(
            record.input, _views.parameter_names(record.application)
        )
        output = None
        if record.status is RequestStatus.SUCCEEDED:
            output = await self.values.json(record.output)
        return _views.request_page(
            record,
            loaded.calls,
            loaded.tree,
            _journal.progress_lines(events),
            _calls.now_ms(),
            seq=seq,
            arguments=arguments,
            output=output,
        )

    def _missing(self, request: Request) -> Response:
        request_id = _text(request, "request_id")
        return self._error(
            404,
            "Request not found",
            f"No request {request_id}.",
            hint="It may have been deleted, or the id is mistyped.",
        )

    def _error(self, status: int, title: str, message: str, hint: str = "") -> Response:
        return self.templates.page(
            "error.html", status_code=status, title=title, message=message, hint=hint
        )
