"""The request page: rendered whole once, then brought up to date part by part.

``page`` renders a request's page for the default ``ViewState``; ``view`` answers
the page's script with JSON: the keys of every part in order and the HTML of the
parts that changed since the version it has (``_live``), for the ``ViewState`` it
sends (what it unfolded and opened). Everything is read a page at a time from the
store (``_tree``), in one worker thread per answer; values are decoded off the
event loop (``_decoding``), and only for the parts that changed.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cairn import _calls, _request_ops
from cairn.store import CallCounts, CallRecord, RequestRecord, RunSpan, Store
from cairn.types import CallStatus, RequestStatus

from .. import _api, _errors
from . import (
    _decoding,
    _journal,
    _live,
    _render,
    _rows,
    _stream_pane,
    _timeline,
    _tree,
    _values,
    _views,
)

_MAX_ID_CHARS = 512
# Finished requests whose runs and call counts are kept (they change only when a
# replay starts a new run).
_CACHED = 256


def text_param(request: Request, name: str) -> str:
    """A path or query parameter as text a store can look up ("" if it cannot)."""
    value = request.path_params.get(name) or request.query_params.get(name) or ""
    try:
        value.encode()
    except UnicodeEncodeError:
        return ""
    return value[:_MAX_ID_CHARS]


@dataclass(kw_only=True)
class _Opened:
    """A call the page opened, as read from the store."""

    key: str
    record: CallRecord
    path: str
    attempts: list[_rows.Attempt]
    log: _journal.LogPage
    focused: bool
    print: int


@dataclass(kw_only=True)
class _Read:
    """What one answer reads from the store (in a worker thread)."""

    record: RequestRecord
    runs: list[RunSpan]
    counts: CallCounts
    rows: list[_rows.Row]
    seq: int
    log: _journal.LogPage
    waiting: str | None = None
    awaited_signal: str | None = None
    opened: list[_Opened] = field(default_factory=list)


@dataclass(kw_only=True)
class Built:
    """A request page (or an update of one), ready to render."""

    record: RequestRecord
    head: _views.Head
    timeline: _timeline.Timeline
    now_ms: float
    seq: int
    log: _journal.LogPage
    items: list[tuple[str, str, Any]]
    """``(key, kind, what)`` in document order: tree rows and opened calls."""
    arguments: _values.Arguments | None
    output: _values.Shown | None
    token: str
    version: int
    changed: set[str]
    state: _tree.ViewState

    @property
    def output_path(self) -> str:
        """Where the API serves the request's output (under the namespace)."""
        return _views.output_path(self.record)


class _Cache:
    """Runs and counts of finished requests, by (id, run, end)."""

    def __init__(self) -> None:
        self._found: OrderedDict[tuple[str, int, float], Any] = OrderedDict()

    def get(self, record: RequestRecord) -> Any:
        key = self._key(record)
        return None if key is None else self._found.get(key)

    def put(self, record: RequestRecord, value: Any) -> None:
        key = self._key(record)
        if key is None:
            return
        self._found[key] = value
        while len(self._found) > _CACHED:
            self._found.popitem(last=False)

    @staticmethod
    def _key(record: RequestRecord) -> tuple[str, int, float] | None:
        if not record.status.finished or record.finished_at_ms is None:
            return None
        return record.id, record.run, record.finished_at_ms


def _read(
    store: Store, request_id: str, state: _tree.ViewState, cache: _Cache
) -> _Read | None:
    # The events' end first, then the records: the page shows every event up to
    # `seq` (its script skips those its stream sends again), so what it reads
    # must be at least as new as `seq`.
    seq = _journal.last_seq(store, request_id)
    record = store.get_request(request_id)
    if record is None:
        return None
    found = cache.get(record)
    if found is None:
        found = (store.list_runs(record.id), store.count_calls(record.id, record.run))
        cache.put(record, found)
    runs, counts = found
    rows = _tree.Walk(store, record, runs, state).rows()
    read = _Read(
        record=record,
        runs=runs,
        counts=counts,
        rows=rows,
        seq=seq,
        log=_journal.log_page(store, record.id, runs, before=state.log_before),
        waiting=_request_ops.waiting_for(store, record),
        awaited_signal=None
        if record.status.finished
        else next(
            (w.name for w in store.list_waits(record.id) if w.kind == "signal"), None
        ),
    )
    shown = {row.id: row for row in rows if isinstance(row, _rows.CallRow)}
    for call_id in state.details:
        opened = _open(store, record, runs, call_id, shown.get(call_id))
        if opened is not None:
            read.opened.append(opened)
    return read


def _open(
    store: Store,
    record: RequestRecord,
    runs: Sequence[RunSpan],
    call_id: str,
    row: _rows.CallRow | None,
) -> _Opened | None:
    call = store.get_call(call_id)
    if call is None or call.request_id != record.id:
        return None
    failed = store.list_attempts_of([call_id]) if _rows.needs_attempts(call) else []
    version = store.code_versions([call_id]).get(call_id)
    log = _journal.log_page(store, record.id, runs, call_id=call_id, limit=20)
    newest = log.lines[-1].seq if log.lines else 0
    if row is not None:
        key, path, print_ = f"{row.key}/~details", row.path, hash((row, newest))
    else:
        path = _tree.path_of(store, call_id)
        state = (call.status, call.run, call.attempts, call.served_run)
        key, print_ = f"~focus/{call_id}", hash((state, call.finished_at_ms, newest))
    return _Opened(
        key=key,
        record=call,
        path=path,
        attempts=_rows.attempts(call, failed, version),
        log=log,
        focused=row is None,
        print=print_,
    )


def _calls_text(count: int) -> str:
    return f"{count:,} call" + ("" if count == 1 else "s")


def _served(count: int) -> str:
    if count == 1:
        return "is served from its checkpoint"
    return "are served from their checkpoints"


def _plan(store: Store, request_id: str, from_call: str | None) -> list[str]:
    """What a replay of a request (from a call) runs again, in sentences."""
    record = store.get_request(request_id)
    if record is None:
        raise _errors.not_found("request_not_found", f"no request {request_id!r}")
    total = store.count_calls(record.id, record.run).total
    if from_call is None:
        again = store.count_rerun(record.id, None)
        served = total - again
        return [
            f"{record.application} runs again from the top with the code this "
            "server loaded.",
            f"{_calls_text(again)} that did not succeed "
            + ("runs" if again == 1 else "run")
            + " again, their side effects included."
            if again
            else "Every call succeeded: none runs again.",
            f"{_calls_text(served)} that succeeded {_served(served)}, not run.",
        ]
    call = store.get_call(from_call)
    if call is None or call.request_id != record.id:
        raise _errors.bad_request(
            "call_not_found", f"request {record.id} has no call {from_call[:80]!r}"
        )
    since = call.started_at_ms if call.started_at_ms is not None else 0.0
    ancestors, parent = 0, call.parent_id
    while parent is not None and ancestors < 1000:  # they run again too
        ancestors += 1
        above = store.get_call(parent)
        parent = above.parent_id if above is not None else None
    again = min(store.count_rerun(record.id, since) + ancestors, total)
    return [
        f"{_rows.label(call)} and every call started after it run again: "
        f"{_calls_text(again)}, their side effects included.",
        f"The {_calls_text(total - again)} before it {_served(total - again)}.",
    ]


def _prints(
    read: _Read, timeline: _timeline.Timeline, head: _views.Head
) -> dict[str, int]:
    record = read.record
    prints = {
        "head": head.fingerprint(),
        "values": hash((record.status, record.run, record.finished_at_ms)),
        # The newest page grows live on the page (its script adds each progress
        # message as it comes): sent again for its first message, for another
        # run, when the run ends, or for another page.
        "log": hash(
            (record.run, record.status.finished, bool(read.log.lines))
            if read.log.before is None
            else (tuple(line.seq for line in read.log.lines), read.log.before)
        ),
        "scale": hash(
            tuple((lane.run, lane.start_ms, lane.running) for lane in timeline.lanes)
        ),
    }
    for opened in read.opened:
        prints[opened.key] = opened.print
    for row in read.rows:
        prints[row.key] = hash(row)
    return prints


def _items(read: _Read) -> list[tuple[str, str, Any]]:
    opened = {o.key: o for o in read.opened}
    items: list[tuple[str, str, Any]] = [
        (o.key, "details", o) for o in read.opened if o.focused
    ]
    for row in read.rows:
        items.append((row.key, "row", row))
        details = opened.get(f"{row.key}/~details")
        if details is not None:
            items.append((details.key, "details", details))
    return items


class RequestPages:
    """The request page's routes (``Dashboard`` mounts them)."""

    def __init__(self, templates: _render.Templates, values: _decoding.Values) -> None:
        self.templates = templates
        self.values = values
        self.versions = _live.Versions()
        self._cache = _Cache()

    async def page(self, request: Request) -> Response:
        """``/ui/requests/{id}``: the whole page."""
        built = await self._build(request, _tree.ViewState(), None, 0)
        if built is None:
            return self.missing(request)
        pane = await _api_state(request).pool.run(
            functools.partial(
                _stream_pane.read, request_id=built.record.id, until_seq=built.seq
            )
        )
        return self.templates.page(
            "request.html",
            page=built,
            stream=pane,
            headers={
                "Server-Timing": f"render;dur={_calls.now_ms() - built.now_ms:.1f}"
            },
        )

    async def view(self, request: Request) -> Response:
        """``/ui/requests/{id}/view``: what changed, as JSON (see ``_live``)."""
        state = _tree.parse_state(query_lists(request))
        token = request.query_params.get("token", "")
        raw_have = request.query_params.get("have", "0")
        if not _live.valid_token(token):
            raise _errors.bad_request("bad_token", "token must be a page token")
        if not (raw_have.isascii() and raw_have.isdigit() and len(raw_have) <= 9):
            raise _errors.bad_request("bad_have", "have must be a version number")
        built = await self._build(request, state, token, int(raw_have))
        if built is None:
            raise _errors.not_found(
                "request_not_found", f"no request {text_param(request, 'request_id')!r}"
            )
        took = f"render;dur={_calls.now_ms() - built.now_ms:.1f}"
        return JSONResponse(
            self._update(built), headers={**_render.HEADERS, "Server-Timing": took}
        )

    async def call(self, request: Request) -> Response:
        """``/ui/requests/{id}/calls/{call_id}``: one call, opened (a row of HTML)."""
        call_id = text_param(request, "call_id")
        state = _tree.ViewState(details=(call_id,) if call_id else ())
        built = await self._build(request, state, None, 0)
        if built is None:
            return self.missing(request)
        for key, kind, what in built.items:
            if kind == "details" and what.record.id == call_id:
                return self.templates.page(
                    "_call.html", details=what, page=built, key=key
                )
        return self.templates.error(
            404, "No such call", f"Request {built.record.id} has no call {call_id}."
        )

    async def replay_plan(self, request: Request) -> Response:
        """``/ui/requests/{id}/replay-plan[?from_call=ID]``: what a replay runs
        again, in words, for the confirmation the page asks before it."""
        request_id = text_param(request, "request_id")
        from_call = request.query_params.get("from_call")
        if from_call is not None and not 0 < len(from_call) <= _MAX_ID_CHARS:
            raise _errors.bad_request("bad_from_call", "from_call must be a call id")
        plan = await _api_state(request).pool.run(
            functools.partial(_plan, request_id=request_id, from_call=from_call)
        )
        return JSONResponse({"lines": plan}, headers=_render.HEADERS)

    def missing(self, request: Request) -> Response:
        """The page of a request that does not exist."""
        return self.templates.error(
            404,
            "Request not found",
            f"No request {text_param(request, 'request_id')}.",
            hint="It may have been deleted, or the id is mistyped.",
        )

    # -- building ------------------------------------------------------------------

    async def _build(
        self,
        request: Request,
        state: _tree.ViewState,
        token: str | None,
        have: int,
    ) -> Built | None:
        pool = _api_state(request).pool
        started_ms = _calls.now_ms()
        read = await pool.run(
            functools.partial(
                _read,
                request_id=text_param(request, "request_id"),
                state=state,
                cache=self._cache,
            )
        )
        if read is None:
            return None
        record = read.record
        now_ms = _calls.now_ms()
        timeline = _timeline.timeline(record, read.runs, now_ms)
        head = _views.head(
            record, read.counts, now_ms, read.waiting, read.awaited_signal
        )
        prints = _prints(read, timeline, head)
        if token is None:
            token, version = self.versions.start(prints)
            changed = set(prints)
        else:
            version, changed = self.versions.changed(token, have, prints)
        arguments: _values.Arguments | None = None
        output: _values.Shown | None = None
        if "values" in changed:
            names = _views.parameter_names(record.application)
            arguments = await self.values.arguments(record.input, names)
            if record.status is RequestStatus.SUCCEEDED:
                output = await self.values.json(record.output)
        items = _items(read)
        rendered = []
        for key, kind, what in items:
            if kind == "details" and key in changed:
                what = await self._details(pool, record, what)
            rendered.append((key, kind, what))
        return Built(
            record=record,
            head=head,
            timeline=timeline,
            now_ms=started_ms,
            seq=read.seq,
            log=read.log,
            items=rendered,
            arguments=arguments,
            output=output,
            token=token,
            version=version,
            changed=changed,
            state=state,
        )

    async def _details(
        self, pool: Any, request: RequestRecord, opened: _Opened
    ) -> _views.CallDetails:
        call = opened.record

        def blobs(store: Store) -> tuple[bytes | None, bytes | None]:
            succeeded = call.status is CallStatus.SUCCEEDED and call.kind != "app"
            output = store.get_call_output(call.id) if succeeded else None
            return store.get_call_args(call.id), output

        names = _views.parameter_names(call.function)
        shown: _values.Shown | None = None
        if call.kind == "app":  # the request's own input and output (JSON)
            arguments = await self.values.arguments(request.input, names)
            if call.status is CallStatus.SUCCEEDED:
                shown = await self.values.json(request.output)
        else:
            args, output = await pool.run(blobs)
            arguments, shown = await self.values.call(args, output, names)
            if call.status is not CallStatus.SUCCEEDED:
                shown = None
        return _views.call_details(
            call,
            request,
            key=opened.key,
            path=opened.path,
            attempts=opened.attempts,
            arguments=arguments,
            output=shown,
            log=opened.log,
            focused=opened.focused,
        )

    def _update(self, built: Built) -> dict[str, Any]:
        text = self.templates.text
        parts: dict[str, str] = {}
        context = {"page": built}
        for name in ("head", "values", "log", "scale"):
            if name in built.changed:
                parts[name] = text(f"_{name}.html", **context)
        rows: dict[str, str] = {}
        for key, kind, what in built.items:
            if key not in built.changed:
                continue
            if kind == "row":
                rows[key] = text("_row.html", row=what, **context)
            else:
                rows[key] = text("_call.html", details=what, key=key, **context)
        record = built.record
        return {
            "version": built.version,
            "seq": built.seq,
            "status": str(record.status),
            "finished": record.status.finished,
            "run": record.run,
            "timeline": built.timeline.as_json(),
            "parts": parts,
            "keys": [key for key, _, _ in built.items],
            "rows": rows,
        }


def _api_state(request: Request) -> _api.ServerState:
    state: _api.ServerState = request.app.state.cairn
    return state


def query_lists(request: Request) -> Mapping[str, list[str]]:
    """Every query parameter with all its values."""
    return {key: request.query_params.getlist(key) for key in request.query_params}
