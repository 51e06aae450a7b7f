"""``Request``, ``run_local_application`` and ``get_request``: requests on the local store."""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cairn import (
    _calls,
    _decorators,
    _engine,
    _ids,
    _limits,
    _local_report,
    _registry,
    _serialization,
    _values,
    errors,
)
from cairn._execution import frames as _frames
from cairn._execution import waits as _waits
from cairn._store_cache import borrowed
from cairn.observability import _tracing
from cairn.store import (
    CallKey,
    EventRecord,
    NewRequest,
    RequestOutcome,
    RequestRecord,
    Store,
    default_url,
    redact_url,
)
from cairn.types import CallStatus, FailureReason, RequestStatus

if TYPE_CHECKING:
    from cairn._remote import RemoteRequest


@dataclass(frozen=True, kw_only=True)
class AttemptInfo:
    """One attempt of a call."""

    attempt: int
    """1-based number, counted over every run of the request."""
    run: int
    """The run (1 = original, 2 = first replay, ...) it belonged to."""
    outcome: str
    """``success``, ``failure``, ``timed_out`` or ``crashed``."""
    duration_s: float | None
    """How long it ran."""
    error: dict[str, Any] | None
    """Type, message and traceback text of a failure."""
    retry_delay_s: float | None
    """The backoff before the next attempt, if one followed."""
    code_version: str | None = None
    """The version of the code that ran it (a hash of its function's module)."""


@dataclass(frozen=True, kw_only=True)
class CallInfo:
    """One function call of a request, as ``Request.calls()`` reports it."""

    id: str
    """Durable id."""
    function: str
    """Function name."""
    kind: str
    """``app``, ``call``, ``map_item``, ``map`` (a map over a Future's output),
    ``reduce``, ``reduce_step`` or ``wait`` (a journaled ``Future.wait``)."""
    parent_id: str | None
    """The calling call's id."""
    seq: int
    """Position among the parent's calls (or the item's index)."""
    status: CallStatus
    """Current status."""
    attempts: list[AttemptInfo]
    """Every attempt, oldest first."""
    started_at_ms: float | None
    """Start of the latest attempt."""
    finished_at_ms: float | None
    """End of the latest attempt."""
    served_from_checkpoint: bool
    """The latest run took this call's output from its checkpoint."""
    ran_in_latest_run: bool
    """The latest run executed this call."""
    error: dict[str, Any] | None
    """The latest failure."""

    @property
    def duration_s(self) -> float | None:
        """Duration of the latest attempt."""
        if self.started_at_ms is None or self.finished_at_ms is None:
            return None
        return (self.finished_at_ms - self.started_at_ms) / 1000.0


class Request:
    """A request: its id, output, status, calls, events; replay and cancel it."""

    def __init__(self, request_id: str, store_url: str | None = None) -> None:
        self._id = request_id
        self._store_url = store_url or default_url()

    @property
    def id(self) -> str:
        """The request id."""
        return self._id

    def _record(self) -> RequestRecord:
        with borrowed(self._store_url) as store:
            record = store.get_request(self._id)
        if record is None:
            raise errors.RequestNotFound(
                f"no request with id {self._id!r} in {redact_url(self._store_url)}"
            )
        return record

    def status(self) -> RequestStatus:
        """Where the request is in its life."""
        return self._record().status

    def output(self) -> Any:
        """The application's output.

        Raises:
            RequestNotFinished: it is still running.
            RequestError: user code failed it on purpose (message kept verbatim).
            ReplayMismatch: a strict replay saw the code take a different path.
            RequestFailed: it failed; ``reason`` says why (``function_error``, ...).
        """
        record = self._record()
        if not record.status.finished:
            raise errors.RequestNotFinished(f"request {self._id!r} is {record.status}")
        if record.status is RequestStatus.SUCCEEDED:
            return decode_output(record.application, record.output or b"null")
        raise failure_of(record)

    def calls(self) -> list[CallInfo]:
        """Every call of the request in start order, with attempts."""
        with borrowed(self._store_url) as store:
            record = store.get_request(self._id)
            if record is None:
                raise errors.RequestNotFound(f"no request with id {self._id!r}")
            attempts: dict[str, list[AttemptInfo]] = {}
            for attempt in store.list_attempts(self._id):
                attempts.setdefault(attempt.call_id, []).append(
                    AttemptInfo(
                        attempt=attempt.attempt,
                        run=attempt.run,
                        outcome=attempt.outcome,
                        duration_s=(
                            None
                            if attempt.started_at_ms is None
                            else (attempt.finished_at_ms - attempt.started_at_ms)
                            / 1000.0
                        ),
                        error=attempt.error,
                        retry_delay_s=attempt.retry_delay_s,
                        code_version=attempt.code_version,
                    )
                )
            calls = []
            for call in store.list_calls(self._id):
                ran = [a for a in attempts.get(call.id, []) if a.run == record.run]
                calls.append(
                    CallInfo(
                        id=call.id,
                        function=call.function,
                        kind=call.kind,
                        parent_id=call.parent_id,
                        seq=call.seq,
                        status=call.status,
                        attempts=sorted(
                            attempts.get(call.id, []), key=lambda a: a.attempt
                        ),
                        started_at_ms=call.started_at_ms,
                        finished_at_ms=call.finished_at_ms,
                        served_from_checkpoint=call.served_run == record.run
                        and not ran,
                        ran_in_latest_run=bool(ran),
                        error=call.error,
                    )
                )
            return calls

    def events(self, after_seq: int = 0) -> list[EventRecord]:
        """Events recorded so far, after ``after_seq``."""
        with borrowed(self._store_url) as store:
            return store.list_events(self._id, after_seq, limit=100_000)

    def progress(self, poll_interval_s: float = 0.05) -> Iterator[dict[str, Any]]:
        """Events as ``{"Kind": {...}}`` until the request finishes."""
        with borrowed(self._store_url) as store:
            seq = 0
            while True:
                for event in store.list_events(self._id, seq):
                    seq = event.seq
                    yield {event.kind: event.payload}
                    if event.kind == "RequestFinished":
                        return
                time.sleep(poll_interval_s)

    def replay(
        self,
        from_call: str | None = None,
        strict: bool = False,
        upgrade_to_latest_version: bool = True,
    ) -> Request:
        """Run the request again under the same id with the code loaded now.

        Calls whose checkpoints match are served from them; failed, timed-out and
        new calls run. ``from_call`` forces that call and every call started after
        it to run again. ``strict`` stops with ``ReplayMismatch`` where the code
        took a different path. Returns when the replay has finished.

        Raises:
            RequestRunning: a run of the request is still pending or running (an
                earlier replay not finished yet): nothing was started.
        """
        del upgrade_to_latest_version  # the code loaded in this process is the latest
        with borrowed(self._store_url) as store:
            store.start_replay(
                self._id,
                from_call=from_call,
                strict=strict,
                now_ms=_calls.now_ms(),
                owner=local_owner(self._store_url),
            )
        _run(self._id, self._store_url)
        _local_report.print_failures(self._id, self._store_url)
        return self

    def signal(self, name: str, value: Any = None) -> None:
        """Send the signal ``name`` to the request: the value of the next
        ``wait_for_signal(name)`` (kept until one comes). JSON values are sent as
        JSON; others are pickled.

        Raises:
            RequestNotFound: there is no such request.
            RequestFinished: the request has finished.
        """
        with borrowed(self._store_url) as store:
            _waits.send(store, self._id, name, value, _calls.now_ms())

    def cancel(self) -> None:
        """Stop the request: nothing more runs for it."""
        with borrowed(self._store_url) as store:
            record = store.get_request(self._id)
            if record is None:
                raise errors.RequestNotFound(f"no request with id {self._id!r}")
            if not record.status.finished:
                store.finish_request(
                    self._id,
                    RequestOutcome(
                        status=RequestStatus.CANCELLED,
                        failure_reason=FailureReason.CANCELLED,
                    ),
                    _calls.now_ms(),
                )

    def __repr__(self) -> str:
        return f"Request(id={self._id!r})"


def decode_output(application: str, data: bytes) -> Any:
    """An application's stored output as its caller gets it: typed by the return
    hint when the application's code is loaded, a ``File`` when it returned one."""
    spec = _registry.find(application)
    if spec is not None:
        return _serialization.boundary(spec.fn).decode_output(data)
    file = _values.file_from_json_bytes(data)
    return json.loads(data) if file is None else file


def failure_of(record: RequestRecord) -> errors.CairnError:
    """The exception ``output()`` raises for a failed request."""
    error = record.error or {}
    reason = record.failure_reason or "unknown"
    if reason == FailureReason.REQUEST_ERROR:
        failure = errors.RequestError(error.get("message", ""))
        failure.function_name = error.get("function_name")
        return failure
    if reason == FailureReason.REPLAY_MISMATCH:
        return errors.ReplayMismatch(error.get("message", "replay mismatch"))
    detail = error.get("message")
    # str() is the reason alone (Tensorlake's); what failed rides along as a note.
    return errors.RequestFailed(
        reason,
        f"{error.get('type')}: {detail}" if detail else None,
        function_name=error.get("function_name"),
        error_type=error.get("type"),
        error_message=detail,
        traceback=error.get("traceback"),
    )


def _app_name(app: Any) -> str:
    if isinstance(app, _decorators.Function):
        spec = app._spec
    elif isinstance(app, str):
        found = _registry.find(app)
        if found is None:
            raise errors.SDKUsageError(
                f"no application named {app!r} is defined in the loaded code"
            )
        spec = found
    else:
        raise errors.SDKUsageError(
            f"run_local_application() takes an application function or its name, got {app!r}"
        )
    _decorators.check_runnable(spec)
    return spec.name


def _code_ref(name: str) -> str | None:
    spec = _registry.get(name)
    module = sys.modules.get(spec.module)
    path = getattr(module, "__file__", None)
    if spec.module == "__main__" or not spec.module:
        return path
    return spec.module if path is None else f"{spec.module}@{path}"


# The engine of this process's latest local run, kept so that the next run on the
# same store does not start its executor processes again (one at a time: tests and
# scripts that switch stores do not pile up idle pools).
_local_engine: _engine.Engine | None = None


def _engine_for(store_url: str) -> _engine.Engine:
    global _local_engine
    if _local_engine is not None and (
        _local_engine.store_url != store_url
        or _local_engine.concurrency != _engine.default_concurrency()
        or not _local_engine.owned_by_this_process()
    ):
        _local_engine.close()
        _local_engine = None
    if _local_engine is None:
        _local_engine = _engine.Engine(store_url)
        atexit.register(_local_engine.close)
    return _local_engine


def waiting_for(store: Store, record: RequestRecord) -> str | None:
    """What an unfinished request waits for, or None: a worker that serves a
    function of its pending calls (none is alive; for a request nobody runs
    alone), a rate limit, a slot of a concurrency key (flow control), a timer
    or a signal (``sleeping until …``, ``waiting: signal 'approval'``)."""
    if record.status.finished:
        return None
    now_ms = _calls.now_ms()
    reasons = []
    missing = [] if record.owner else store.unserved_functions(record.id, now_ms)
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        reasons.append(f"waiting for a worker that serves {names}")
    for function, kind, key in store.flow_waits(record.id, now_ms):
        if kind == "rate":
            reasons.append(f"waiting for the rate limit of `{function}`")
        else:
            reasons.append(f"waiting for a slot of `{function}` for key {key!r}")
    reasons += [_waits.describe(wait) for wait in store.list_waits(record.id)]
    return "; ".join(reasons) or None


def local_owner(store_url: str) -> str:
    """The id of this process's engine, started: a request it owns is run by it
    alone (and by no other process while it lives)."""
    if _frames.current_or_none() is not None:
        raise errors.SDKUsageError("cannot run a request from inside a function call")
    engine = _engine_for(store_url)
    engine.start()  # alive in the store before it owns anything
    return engine.worker_id


def _run(
    request_id: str, store_url: str, on_tick: Callable[[], None] | None = None
) -> RequestRecord:
    global _local_engine
    if _frames.current_or_none() is not None:
        raise errors.SDKUsageError("cannot run a request from inside a function call")
    engine = _engine_for(store_url)
    try:
        return engine.run_until_finished(request_id, on_tick=on_tick)
    except BaseException:
        # Interrupted (Ctrl-C) or broken: stop the executors now, hand their calls back.
        engine.close()
        _local_engine = None
        raise


def submit(
    app: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    store_url: str,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
    owner: str | None = None,
    priority: int = 0,
) -> str:
    """Create a request (pending) for an application and return its id; ``owner``
    (see ``local_owner``) runs it alone, else any serving worker may; the calls
    of higher-``priority`` requests are claimed first."""
    request, root, payload = new_request(
        app,
        args,
        kwargs,
        headers=headers,
        request_id=request_id,
        owner=owner,
        priority=priority,
    )
    with borrowed(store_url) as store:
        store.create_request(request, root, payload)
    return request.id


def new_request(
    app: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
    owner: str | None = None,
    priority: int = 0,
) -> tuple[NewRequest, CallKey, bytes]:
    """A request to create, its application call and that call's arguments, with
    the input validated (bad input fails here with a clear message, not in a worker).
    """
    name = _app_name(app)
    spec = _registry.get(name)
    boundary = _serialization.boundary(spec.fn)
    payload = _serialization.encode_json_input(args, kwargs)
    data = json.loads(payload)
    boundary.bind_input(data["args"], data["kwargs"], name)
    request_id = request_id or _ids.new_request_id()
    request = NewRequest(
        id=request_id,
        application=name,
        code_ref=_code_ref(name),
        input=payload,
        headers=dict(headers or {}),
        created_at_ms=_calls.now_ms(),
        owner=owner,
        priority=_limits.priority(priority, "priority"),
    )
    return request, CallKey.application_call(request_id, name), payload


def run_local_application(app: Any, *args: Any, **kwargs: Any) -> Request:
    """Run an application durably on this machine and return its finished ``Request``.

    As Tensorlake's local mode, each call that failed for good is printed to
    stderr with its traceback (``request.output()`` only says ``function_error``).

    The store is ``CAIRN_STORE`` (default ``sqlite:///.cairn/cairn.db``); pass
    ``cairn_store="sqlite:///path.db"`` to choose another. ``cairn_priority=N``
    (an int, default 0): where workers share the store, calls of higher-priority
    requests are claimed first.
    """
    store_url = kwargs.pop("cairn_store", None) or default_url()
    priority = _limits.priority(kwargs.pop("cairn_priority", 0), "cairn_priority")
    request_id = submit(
        app,
        args,
        kwargs,
        store_url=store_url,
        owner=local_owner(store_url),
        priority=priority,
        headers=_tracing.current_traceparent(),  # its spans join the caller's trace
    )
    _run(request_id, store_url)
    _local_report.print_failures(request_id, store_url)
    return Request(request_id, store_url)


def get_request(request_id: str, store: str | None = None) -> Request | RemoteRequest:
    """The ``Request`` of an earlier run, from any process.

    From the store ``store`` (default ``CAIRN_STORE`` or ``.cairn/cairn.db``) or,
    when no store is named and ``CAIRN_API_URL`` is set, from that server.

    Raises:
        RequestNotFound: the store has no such request.
        RemoteAPIError: the server answered with an error (404 for an unknown id).
    """
    if store is None and os.environ.get("CAIRN_API_URL"):
        from cairn import _remote

        return _remote.get_remote_request(request_id)
    request = Request(request_id, store)
    request._record()
    return request
