"""The JSON routes: thin wrappers over ``_request_ops`` and the store.

Every route exists under ``/v1/namespaces/{namespace}`` and, for the served
namespace, without the prefix (``_routes``). Store work runs in worker threads,
each with a store of the server's pool (``StorePool``): no route opens one.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import anyio.to_thread
import pydantic
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cairn import (
    _limits,
    _registry,
    _request_ops,
    _serialization,
    _values,
    errors,
)
from cairn.store import CallRecord, RequestRecord, Store
from cairn.types import CallStatus, RequestStatus

from . import (
    _body,
    _errors,
    _idempotency,
    _models,
    _shapes,
    _sse,
    _stores,
    _submissions,
)

MAX_PAGE = 100
DEFAULT_PAGE = 20
_MAX_NAME_CHARS = _models.MAX_NAME_CHARS
_REPLAY_BODY_BYTES = 64 * 1024
# An invoke's priority: the calls of higher-priority requests are claimed first.
PRIORITY_HEADER = "X-Cairn-Priority"
# Invoke headers not passed on to the request's functions as RequestContext.headers.
_PRIVATE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "upgrade",
        "content-length",
    }
)
OUTPUT_TYPE = "application/json; charset=UTF-8"
PICKLE_TYPE = "application/python-pickle"


@dataclass(eq=False)
class ServerState:
    """What every route needs: the store, the namespace, the event watcher."""

    store_url: str
    namespace: str
    pool: _stores.StorePool
    watcher: _stores.ChangeWatcher
    submissions: _submissions.Submissions
    versions: dict[str, str]
    auth: bool = False
    """Whether every route but ``/healthz`` needs the API key."""

    def version(self, application: str) -> str | None:
        """The version of an application's loaded code."""
        if application not in self.versions:
            spec = _registry.find(application)
            if spec is None:
                return None
            self.versions[application] = _shapes.version(spec)
        return self.versions[application]


def answer(
    model: pydantic.BaseModel, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A 200 answer with ``model``'s JSON."""
    return JSONResponse(model.model_dump(mode="json"), headers=headers)


def _state(request: Request) -> ServerState:
    state: ServerState = request.app.state.cairn
    namespace = request.path_params.get("namespace")
    if namespace is not None and namespace != state.namespace:
        raise _errors.not_found(
            "namespace_not_found",
            f"no namespace {namespace[:80]!r}: this server serves {state.namespace!r}",
        )
    return state


def _storable(text: str) -> bool:
    """Whether every store can hold and look up ``text``: UTF-8 and no NUL
    (PostgreSQL refuses NUL in text, where SQLite would look it up)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _text(request: Request, name: str) -> str:
    """A path parameter, which must be text the store can hold (else ``""``)."""
    value: str = request.path_params[name]
    if len(value) > _MAX_NAME_CHARS or not _storable(value):
        value = ""
    return value


def _spec(name: str) -> _registry.FunctionSpec:
    spec = _registry.find(name)
    if spec is None or spec.application is None:
        served = ", ".join(sorted(s.name for s in _registry.applications()))
        raise _errors.not_found(
            "application_not_found",
            f"no application {name[:80]!r} (served: {served or 'none'})",
        )
    return spec


async def _record(
    state: ServerState, application: str, request_id: str
) -> RequestRecord:
    record = await state.pool.run(lambda store: store.get_request(request_id))
    if record is None or record.application != application:
        raise _errors.not_found(
            "request_not_found",
            f"application {application[:80]!r} has no request {request_id[:80]!r}",
        )
    return record


# -- applications -----------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """Liveness: the server answers and its store can be read."""
    state: ServerState = request.app.state.cairn
    await state.pool.run(lambda store: store.change_token())
    return answer(_models.Health(status="ok"))


async def list_applications(request: Request) -> Response:
    """``GET /applications``."""
    state = _state(request)
    specs = sorted(_registry.applications(), key=lambda s: s.name)
    return answer(
        _models.ApplicationList(
            applications=[
                _shapes.application(spec, state.version(spec.name) or "")
                for spec in specs
            ]
        )
    )


async def get_application(request: Request) -> Response:
    """``GET /applications/{application}``: the manifest Tensorlake's client reads."""
    state = _state(request)
    spec = _spec(_text(request, "application"))
    return answer(_shapes.manifest(spec, state.version(spec.name) or ""))


async def invoke(request: Request) -> Response:
    """``POST /applications/{application}``: start a request."""
    state = _state(request)
    spec = _spec(_text(request, "application"))
    mode = _body.accepted(request)
    request_id = _body.idempotency_key(request)
    boundary = _serialization.boundary(spec.fn)
    args, kwargs = _body.arguments(
        request, await _body.read(request), boundary.takes_file
    )
    headers = {
        key: value
        for key, value in request.headers.items()
        if key not in _PRIVATE_HEADERS
    }
    try:
        priority = _limits.priority(
            request.headers.get(PRIORITY_HEADER, "0"), f"header {PRIORITY_HEADER}"
        )
    except errors.SDKUsageError as error:
        raise _errors.bad_request("invalid_priority", error.message) from None
    try:
        # Validating the input runs the application's pydantic models: not in the
        # event loop.
        submission = await anyio.to_thread.run_sync(
            functools.partial(
                _request_ops.new_request,
                spec.name,
                tuple(args),
                kwargs,
                headers=headers,
                request_id=request_id,
                priority=priority,
            )
        )
    except (errors.SDKUsageError, errors.SerializationError) as error:
        raise _errors.bad_request("invalid_input", error.message) from None
    created = submission[0].id
    answer_headers: dict[str, str] = {}
    if not await state.submissions.create(submission):  # the Idempotency-Key's
        same = functools.partial(
            _idempotency.same_invoke,
            request_id=created,
            application=spec.name,
            args=tuple(args),
            kwargs=kwargs,
        )
        if not await state.pool.run(same):
            raise _errors.conflict(
                "request_exists",
                f"Idempotency-Key {created!r} was used for another invoke "
                "(another application or other arguments)",
            )
        answer_headers[_idempotency.REPLAYED] = "true"
    location = f"{_prefix(request)}/applications/{spec.name}/requests/{created}"
    answer_headers.update({"Location": location, "X-Request-Id": created})
    if mode == _body.EVENT_STREAM:
        stream = _sse.events(state.pool, state.watcher, created, 0)
        return _sse.response(stream, answer_headers)
    return answer(_models.InvokeResult(request_id=created), answer_headers)


def _prefix(request: Request) -> str:
    namespace = request.path_params.get("namespace")
    return "" if namespace is None else f"/v1/namespaces/{namespace}"


# -- request lists ------------------------------------------------------------------


def _page_params(request: Request) -> tuple[int, tuple[float, list[str]] | None]:
    raw = request.query_params.get("limit")
    limit = DEFAULT_PAGE
    if raw is not None:
        # At most 3 digits before int(): a long one would not even convert.
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not (
            1 <= int(raw) <= MAX_PAGE
        ):
            raise _errors.bad_request(
                "bad_limit", f"limit must be an integer from 1 to {MAX_PAGE}"
            )
        limit = int(raw)
    cursor = request.query_params.get("cursor")
    return limit, (None if cursor is None else _shapes.decode_cursor(cursor))


def _status_param(request: Request) -> RequestStatus | None:
    raw = request.query_params.get("status")
    if raw is None:
        return None
    try:
        return RequestStatus(raw)
    except ValueError:
        raise _errors.bad_request(
            "bad_status",
            f"status must be one of {', '.join(s.value for s in RequestStatus)}",
        ) from None


def _page(
    store: Store,
    application: str | None,
    status: RequestStatus | None,
    limit: int,
    cursor: tuple[float, list[str]] | None,
) -> tuple[list[RequestRecord], str | None]:
    """A page of requests, newest first, and the cursor of the next one.

    The store pages by time (``before_ms``); requests created in the same
    millisecond fraction as a page's last one are told apart by the ids the cursor
    carries, so none is skipped or repeated.
    """
    before_ms, seen = (None, []) if cursor is None else cursor
    rows = store.list_requests(
        application=application,
        status=status,
        limit=limit + len(seen) + 1,
        before_ms=None if before_ms is None else math.nextafter(before_ms, math.inf),
    )
    skip = set(seen)
    rows = [r for r in rows if not (r.created_at_ms == before_ms and r.id in skip)]
    page, more = rows[:limit], len(rows) > limit
    if not more or not page:
        return page, None
    last_ms = page[-1].created_at_ms
    ids = [r.id for r in page if r.created_at_ms == last_ms]
    if last_ms == before_ms:
        ids = seen + ids
    return page, _shapes.encode_cursor(last_ms, ids)


async def _list(request: Request, application: str | None) -> Response:
    state = _state(request)
    limit, cursor = _page_params(request)
    status = _status_param(request)
    page, next_cursor = await state.pool.run(
        lambda store: _page(store, application, status, limit, cursor)
    )
    if (
        application is not None
        and not page
        and cursor is None
        and _registry.find(application) is None
    ):
        _spec(application)  # 404: neither served nor in the store
    return answer(
        _models.RequestList(
            requests=[
                _shapes.request_summary(r, state.version(r.application)) for r in page
            ],
            prev_cursor=None,
            next_cursor=next_cursor,
        )
    )


async def list_requests(request: Request) -> Response:
    """``GET /applications/{application}/requests``: newest first, paged by cursor."""
    return await _list(request, _text(request, "application"))


async def list_all_requests(request: Request) -> Response:
    """``GET /requests``: the requests of every application (Cairn)."""
    return await _list(request, None)


# -- one request --------------------------------------------------------------------


async def _metadata(
    state: ServerState, record: RequestRecord
) -> _models.RequestMetadata:
    def read(
        store: Store,
    ) -> tuple[list[CallRecord], list[_request_ops.CallInfo], str | None]:
        return (
            store.list_calls(record.id),
            _request_ops.journal(store, record.id),
            _request_ops.waiting_for(store, record),
        )

    records, calls, waiting = await state.pool.run(read)
    return _shapes.request_metadata(
        record, state.version(record.application), calls, records, waiting
    )


async def get_request(request: Request) -> Response:
    """``GET /applications/{application}/requests/{request_id}``."""
    state = _state(request)
    application = _text(request, "application")
    record = await _record(state, application, _text(request, "request_id"))
    return answer(await _metadata(state, record))


async def find_request(request: Request) -> Response:
    """``GET /requests/{request_id}``: a request of any application (Cairn)."""
    state = _state(request)
    request_id = _text(request, "request_id")
    record = await state.pool.run(lambda store: store.get_request(request_id))
    if record is None:
        raise _errors.not_found("request_not_found", f"no request {request_id[:80]!r}")
    return answer(await _metadata(state, record))


async def progress(request: Request) -> Response:
    """``GET .../requests/{request_id}/progress``: the event stream (SSE)."""
    state = _state(request)
    record = await _record(
        state, _text(request, "application"), _text(request, "request_id")
    )
    resume = _sse.last_event_id(request)
    if request.method == "HEAD":  # the headers only, not a stream held open
        return Response(media_type="text/event-stream", headers=_sse.HEADERS)
    if resume is None:
        start, finish = await state.pool.run(
            lambda store: _sse.start_of_stream(store, record.id)
        )
        if record.status.finished and finish is not None:
            return _sse.response(_sse.one(finish), {})
        resume = start
    return _sse.response(_sse.events(state.pool, state.watcher, record.id, resume), {})


async def output(request: Request) -> Response:
    """``GET .../requests/{request_id}/output``: the application's output (JSON)."""
    state = _state(request)
    record = await _record(
        state, _text(request, "application"), _text(request, "request_id")
    )
    has_output = record.status is RequestStatus.SUCCEEDED
    # A File the application returned is the body, with its own content type.
    file = _values.file_from_json_bytes(record.output or b"")
    body, media_type = (
        (record.output or b"null", OUTPUT_TYPE)
        if file is None
        else (file.content, file.content_type)
    )
    if request.method == "HEAD":
        if not has_output:
            return Response(status_code=204)
        return Response(
            headers={"Content-Type": media_type, "Content-Length": str(len(body))}
        )
    if not record.status.finished:
        raise _errors.conflict(
            "request_not_finished",
            f"request {record.id} is {record.status}: it has no output yet",
        )
    if not has_output:
        raise _errors.not_found(
            "no_output",
            f"request {record.id} {record.status} "
            f"({record.failure_reason or 'unknown'}): it has no output",
        )
    # As a header, not media_type: Starlette would add a charset to text/* types.
    return Response(body, headers={"Content-Type": media_type})


async def call_output(request: Request) -> Response:
    """``GET .../requests/{request_id}/output/{call_id}``: one call's output (pickle)."""
    state = _state(request)
    record = await _record(
        state, _text(request, "application"), _text(request, "request_id")
    )
    call_id = _text(request, "call_id")

    def read(store: Store) -> tuple[CallRecord | None, bytes | None]:
        call = store.get_call(call_id)
        if call is None or call.request_id != record.id:
            return None, None
        if call.status is not CallStatus.SUCCEEDED:
            return call, None
        return call, store.get_call_output(call_id)

    call, data = await state.pool.run(read)
    if call is None:
        raise _errors.not_found(
            "call_not_found", f"request {record.id} has no call {call_id[:80]!r}"
        )
    if data is None:
        raise _errors.not_found(
            "no_output", f"call {call_id} is {call.status}: it has no output"
        )
    return Response(data, media_type=PICKLE_TYPE)


async def replay(request: Request) -> Response:
    """``POST .../requests/{request_id}/replay``: run it again with the served code."""
    state = _state(request)
    record = await _record(
        state, _text(request, "application"), _text(request, "request_id")
    )
    data = await _body.read(request)
    if data.strip():
        _body.require_json(request)
    from_call, strict = _replay_body(data)
    if _registry.find(record.application) is None:
        raise _errors.conflict(
            "application_not_loaded",
            f"this server does not serve application {record.application!r}, "
            "so it cannot replay its requests",
        )

    try:
        run = await state.pool.run(
            lambda store: _request_ops.replay(
                store, record.id, from_call=from_call, strict=strict
            )
        )
    except _request_ops.UnknownCall as error:
        raise _errors.bad_request("call_not_found", error.message) from None
    except errors.SDKUsageError as error:
        raise _errors.conflict("request_running", error.message) from None
    return answer(_models.ReplayResult(request_id=record.id, run=run))


def _replay_body(data: bytes) -> tuple[str | None, bool]:
    if len(data) > _REPLAY_BODY_BYTES:
        raise _errors.ApiError(413, "body_too_large", "the replay body is too large")
    if not data.strip():
        return None, False
    body = _body.model(data, _models.ReplayBody)
    if body.from_call is not None and not _storable(body.from_call):
        raise _errors.bad_request("invalid_body", "from_call is not valid text")
    return body.from_call, body.strict


async def cancel(request: Request) -> Response:
    """``POST .../requests/{request_id}/cancel``: nothing more runs for it."""
    state = _state(request)
    record = await _record(
        state, _text(request, "application"), _text(request, "request_id")
    )
    done = await state.pool.run(lambda store: _request_ops.cancel(store, record.id))
    return answer(
        _models.CancelResult(
            request_id=record.id, status=done.status, cancelled=done.cancelled
        )
    )


async def delete(request: Request) -> Response:
    """``DELETE .../requests/{request_id}``: forget a finished request."""
    state = _state(request)
    record = await _record(
        state, _text(request, "application"), _text(request, "request_id")
    )
    try:
        await state.pool.run(lambda store: _request_ops.delete(store, record.id))
    except errors.RequestNotFinished as error:
        raise _errors.conflict("request_not_finished", error.message) from None
    except errors.RequestNotFound as error:
        raise _errors.not_found("request_not_found", error.message) from None
    return Response(status_code=204)
