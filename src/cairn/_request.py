"""``Request``, ``run_local_application`` and ``get_request``: requests on the local store."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cairn import (
    _limits,
    _local_report,
    _registry,
    _request_ops,
    _serialization,
    _values,
    errors,
    worker,
)
from cairn._store_cache import borrowed
from cairn.observability import _streaming, _tracing
from cairn.store import (
    EventRecord,
    RequestRecord,
    default_url,
    redact_url,
)
from cairn.types import FailureReason, RequestStatus

if TYPE_CHECKING:
    from cairn._remote import RemoteRequest


class Request:
    """A request: its id, output, status, calls, events; replay and cancel it."""

    def __init__(
        self,
        request_id: str,
        store_url: str | None = None,
        *,
        finished: RequestRecord | None = None,
    ) -> None:
        self._id = request_id
        self._store_url = store_url or default_url()
        # The end of the run this object waited for: output() needs no read.
        self._finished = finished

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
        record, self._finished = self._finished or self._record(), None
        if not record.status.finished:
            raise errors.RequestNotFinished(f"request {self._id!r} is {record.status}")
        if record.status is RequestStatus.SUCCEEDED:
            return decode_output(record.application, record.output or b"null")
        raise failure_of(record)

    def calls(self) -> list[_request_ops.CallInfo]:
        """Every call of the request in start order, with attempts."""
        with borrowed(self._store_url) as store:
            return _request_ops.journal(store, self._id)

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

    def stream(self, poll_interval_s: float = 0.05) -> Iterator[Any]:
        """What the request's calls streamed (``ctx.stream.write``), every chunk
        from the first, as str, bytes or JSON values, until the request finishes."""
        with borrowed(self._store_url) as store:
            seq = 0
            while True:
                record = store.get_request(self._id)  # before its events
                events = store.list_events(self._id, seq)
                for event in events:
                    seq = event.seq
                    if event.kind == _streaming.STREAM_CHUNK:
                        yield _streaming.value_of(event.payload)
                if not events:
                    if record is None or record.status.finished:
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
        self._finished = None
        owner = worker.local_owner(self._store_url)
        with borrowed(self._store_url) as store:
            _request_ops.replay(
                store, self._id, from_call=from_call, strict=strict, owner=owner
            )
            self._finished = worker.run_here(self._id, self._store_url)
            _local_report.print_failures(store, self._finished)
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
            _request_ops.signal(store, self._id, name, value)

    def cancel(self) -> None:
        """Stop the request: nothing more runs for it."""
        self._finished = None
        with borrowed(self._store_url) as store:
            _request_ops.cancel(store, self._id)

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
    (see ``worker.local_owner``) runs it alone, else any serving worker may; the calls
    of higher-``priority`` requests are claimed first."""
    submission = _request_ops.new_request(
        app,
        args,
        kwargs,
        headers=headers,
        request_id=request_id,
        owner=owner,
        priority=priority,
    )
    with borrowed(store_url) as store:
        return _request_ops.create(store, submission)


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
    submission = _request_ops.new_request(
        app,
        args,
        kwargs,
        owner=worker.local_owner(store_url),
        priority=priority,
        headers=_tracing.current_traceparent(),  # its spans join the caller's trace
    )
    request_id = submission[0].id
    # One store for the whole run: a borrow may check that the database is still
    # the one at the URL (on PostgreSQL at most once a second, a round trip).
    with borrowed(store_url) as store:
        handed_off = worker.hand_off_here(store_url, store, *submission)
        if not handed_off:
            _request_ops.create(store, submission)
        finished = worker.run_here(request_id, store_url, handed_off=handed_off)
        _local_report.print_failures(store, finished)
    return Request(request_id, store_url, finished=finished)


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
