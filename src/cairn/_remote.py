"""``run_remote_application`` and ``RemoteRequest``: requests on a Cairn server.

A ``RemoteRequest`` has the methods of the local ``Request`` (``output``,
``status``, ``progress``, ``calls``, ``replay``, ``cancel``), each over HTTP.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cairn import (
    _decorators,
    _registry,
    _request,
    _request_ops,
    _serialization,
    _values,
    errors,
)
from cairn.observability import _streaming, _tracing
from cairn.store import RequestRecord
from cairn.types import CallStatus, RequestStatus

if TYPE_CHECKING:
    from cairn import client

# ``cairn.client`` (and httpx) are imported on first use: ``import cairn`` stays
# fast for programs that never talk to a server.

# One HTTP client per server, shared by every request object (closed at exit).
_clients: dict[tuple[str, str | None], client.Client] = {}
_clients_lock = threading.Lock()


def _client(url: str | None, api_key: str | None) -> client.Client:
    from cairn import client

    url = (url or os.environ.get("CAIRN_API_URL") or client.DEFAULT_URL).rstrip("/")
    api_key = api_key if api_key is not None else os.environ.get("CAIRN_API_KEY")
    with _clients_lock:
        found = _clients.get((url, api_key))
        if found is None:
            found = client.Client(url, api_key=api_key or "")
            _clients[(url, api_key)] = found
            atexit.register(found.close)
        return found


class RemoteRequest:
    """A request on a Cairn server: the remote twin of ``cairn.Request``."""

    def __init__(
        self,
        request_id: str,
        application: str,
        *,
        server: str | None = None,
        api_key: str | None = None,
    ) -> None:
        self._id = request_id
        self._application = application
        self._client = _client(server, api_key)

    @property
    def id(self) -> str:
        """The request id."""
        return self._id

    @property
    def application(self) -> str:
        """The application's name."""
        return self._application

    def _metadata(self) -> dict[str, Any]:
        from cairn import client

        try:
            return self._client.request(self._application, self._id)
        except client.ServerError as error:
            if error.status_code == 404:
                raise errors.RequestNotFound(
                    f"no request with id {self._id!r} on {self._client.url}"
                ) from None
            raise

    def status(self) -> RequestStatus:
        """Where the request is in its life."""
        return RequestStatus(self._metadata()["status"])

    def wait(self) -> RequestStatus:
        """Block until the request finishes (following its event stream)."""
        for _ in self._client.events(self._application, self._id, after=None):
            pass
        return self.status()

    def output(self) -> Any:
        """Wait for the request to finish and return the application's output.

        Raises:
            RequestError: user code failed it on purpose (message kept verbatim).
            ReplayMismatch: a strict replay saw the code take a different path.
            RequestFailed: it failed; ``reason`` says why (``function_error``, ...).
        """
        self.wait()
        record = record_from_metadata(self._metadata())
        if record.status is not RequestStatus.SUCCEEDED:
            raise _request.failure_of(record)
        raw, content_type = self._client.output_bytes(self._application, self._id)
        try:
            return _served_output(record.application, raw, content_type)
        except ValueError as error:
            raise errors.DeserializationError(
                f"cannot decode the output of request {self._id}: {error}"
            ) from error

    def progress(self) -> Iterator[dict[str, Any]]:
        """Every event as ``{"Kind": {...}}``, from the first, until it finishes."""
        for _, event in self._client.events(self._application, self._id, after=0):
            yield event

    def stream(self) -> Iterator[Any]:
        """What the request's calls streamed (``ctx.stream.write``), every chunk
        from the first, as str, bytes or JSON values, until it finishes."""
        events = self._client.events(self._application, self._id, after=0)
        yield from _streaming.chunks(event for _, event in events)

    def calls(self) -> list[_request_ops.CallInfo]:
        """Every call of the request in start order, with attempts."""
        return calls_from_metadata(self._metadata())

    def replay(
        self,
        from_call: str | None = None,
        strict: bool = False,
        upgrade_to_latest_version: bool = True,
    ) -> RemoteRequest:
        """Replay the request on the server (with its code) and wait for the end.

        Raises:
            RequestRunning: a run of the request is still pending or running (an
                earlier replay not finished yet): nothing was started.
        """
        from cairn import client

        del upgrade_to_latest_version  # the server runs the code it loaded
        try:
            self._client.replay(
                self._application, self._id, from_call=from_call, strict=strict
            )
        except client.ServerError as error:
            if error.error_code != errors.RequestRunning.code:
                raise
            message = error.message.partition(": ")[2]  # without the status
            run = re.search(r"\brun (\d+)\b", message)
            raise errors.RequestRunning(
                message, request_id=self._id, run=int(run[1]) if run else 0
            ) from None
        self.wait()
        return self

    def cancel(self) -> None:
        """Stop the request: nothing more runs for it (no-op once finished)."""
        self._client.cancel(self._application, self._id)

    def signal(self, name: str, value: Any = None) -> None:
        """Send the signal ``name`` with a JSON ``value`` to the request.

        Raises:
            RemoteAPIError: 404 for an unknown request, 409 once it finished.
        """
        self._client.signal(self._application, self._id, name, value)

    def __repr__(self) -> str:
        return f"RemoteRequest(id={self._id!r}, application={self._application!r})"


def _served_output(application: str, data: bytes, content_type: str) -> Any:
    # The server answers a File output as the raw body with the file's content type.
    spec = _registry.find(application)
    if (
        spec is not None and _serialization.boundary(spec.fn).file_output
    ) or not content_type.startswith("application/json"):
        return _values.File(data, content_type or "application/octet-stream")
    return _request.decode_output(application, data)


def run_remote_application(app: Any, *args: Any, **kwargs: Any) -> RemoteRequest:
    """Start a request of an application on a Cairn server; returns once created.

    The server is ``cairn_server="http://..."``, else ``CAIRN_API_URL``, else
    ``http://127.0.0.1:8900``; the key ``cairn_api_key=`` else ``CAIRN_API_KEY``.
    ``cairn_idempotency_key=`` becomes the request id (a second request with it
    is refused). Every other argument goes to the application, as JSON.

    Raises:
        SDKUsageError: ``app`` is a function but not an application.
        RemoteAPIError: the server refused the request (bad input, unknown app...).
    """
    server = kwargs.pop("cairn_server", None)
    api_key = kwargs.pop("cairn_api_key", None)
    idempotency_key = kwargs.pop("cairn_idempotency_key", None)
    if isinstance(app, _decorators.Function):
        _decorators.check_runnable(app._spec)
        name = app._spec.name
    elif isinstance(app, str):
        name = app
    else:
        raise errors.SDKUsageError(
            "run_remote_application() takes an application function or its name, "
            f"got {app!r}"
        )
    http = _client(server, api_key)
    request_id = http.invoke(
        name,
        args,
        kwargs,
        idempotency_key=idempotency_key,
        headers=_tracing.current_traceparent(),  # the server continues our trace
    )
    return RemoteRequest(request_id, name, server=server, api_key=api_key)


def get_remote_request(
    request_id: str, server: str | None = None, api_key: str | None = None
) -> RemoteRequest:
    """The request with this id on a server, of whichever application.

    Raises:
        RequestNotFound: the server has no such request.
    """
    from cairn import client

    http = _client(server, api_key)
    try:
        metadata = http.request(None, request_id)
    except client.ServerError as error:
        if error.status_code == 404:
            raise errors.RequestNotFound(
                f"no request with id {request_id!r} on {http.url}"
            ) from None
        raise
    return RemoteRequest(
        request_id, metadata["application_name"], server=server, api_key=api_key
    )


# -- metadata -> the records the CLI renders ----------------------------------------


def record_from_metadata(data: dict[str, Any]) -> RequestRecord:
    """A ``RequestRecord`` rebuilt from request metadata (the output left out)."""
    return RequestRecord(
        id=data["id"],
        application=data.get("application_name", ""),
        code_ref=data.get("code_ref"),
        status=RequestStatus(data["status"]),
        failure_reason=data.get("failure_reason"),
        error=data.get("error"),
        input=json.dumps(data.get("input")).encode(),
        output=None,
        headers={},
        run=int(data.get("run", 1)),
        strict_replay=bool(data.get("strict_replay", False)),
        progress=data.get("progress"),
        created_at_ms=float(data.get("created_at_ms", data.get("created_at", 0))),
        started_at_ms=data.get("started_at_ms"),
        finished_at_ms=data.get("finished_at_ms"),
    )


def calls_from_metadata(data: dict[str, Any]) -> list[_request_ops.CallInfo]:
    """The ``CallInfo`` of every function run in request metadata."""
    return [
        _request_ops.CallInfo(
            id=run["id"],
            function=run["name"],
            kind=run.get("kind", "call"),
            parent_id=run.get("parent_id"),
            seq=int(run.get("seq", 0)),
            status=CallStatus(run.get("call_status", "pending")),
            attempts=[
                _request_ops.AttemptInfo(
                    attempt=a["attempt_number"],
                    run=a.get("run", 1),
                    outcome=a.get("attempt_outcome", a["outcome"]),
                    duration_s=(
                        None
                        if a.get("execution_duration_ms") is None
                        else a["execution_duration_ms"] / 1000.0
                    ),
                    error=a.get("error"),
                    retry_delay_s=a.get("retry_delay_s"),
                )
                for a in run.get("allocations", [])
            ],
            started_at_ms=run.get("started_at_ms"),
            finished_at_ms=run.get("finished_at_ms"),
            served_from_checkpoint=bool(run.get("served_from_checkpoint")),
            ran_in_latest_run=bool(run.get("ran_in_latest_run")),
            error=run.get("error"),
        )
        for run in data.get("function_runs", [])
    ]
