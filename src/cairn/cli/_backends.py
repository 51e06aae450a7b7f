"""Where ``cairn requests`` acts: a store (``Local``) or a Cairn server (``Remote``).

``choose`` picks one per command from ``--server`` and ``--store``; the commands
then ask it the same questions either way and render the answers alike. The
local backend does the work with ``_request_ops`` on a store it opens; the remote
one asks the server, which does the same work with its code and its store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import click

from cairn import _remote, _request_ops, errors, worker
from cairn.cli import _common, _loading
from cairn.store import CallRecord, RequestRecord, Store, redact_url
from cairn.types import RequestStatus

if TYPE_CHECKING:
    from cairn import client

# The HTTP client (httpx) is imported by the remote backend alone, so that the
# store-backed commands start fast.


@dataclass(frozen=True, kw_only=True)
class Shown:
    """A request as ``cairn requests show`` prints it."""

    record: RequestRecord
    app_call: CallRecord | None
    waiting: str | None
    calls: list[_request_ops.CallInfo]
    groups: dict[str, str | None]
    """Call id -> map group id."""


class Backend(Protocol):
    """What the ``requests`` commands ask, of a store or of a server."""

    @property
    def where(self) -> str:
        """``in STORE`` or ``on SERVER``, for messages."""
        ...

    def newest(
        self, application: str | None, status: str | None, limit: int
    ) -> tuple[list[RequestRecord], dict[str, CallRecord | None]]:
        """The newest requests, and their application calls where known."""
        ...

    def show(self, request_id: str) -> Shown:
        """One request with its calls."""
        ...

    def replay(
        self, request_id: str, from_call: str | None, strict: bool, app: str | None
    ) -> tuple[RequestRecord, list[_request_ops.CallInfo]]:
        """Replay a request until it finishes; how it ended and its calls."""
        ...

    def cancel(self, request_id: str) -> _request_ops.Cancelled:
        """Cancel a request."""
        ...

    def signal(self, request_id: str, name: str, value: Any) -> None:
        """Send a signal to a request."""
        ...


def choose(server: str | None, store_url: str | None) -> Backend:
    """The server when ``--server`` (or ``CAIRN_API_URL``) names one, else the store."""
    if server:
        return Remote(server)
    return Local(_common.resolve_url(store_url))


def _from_call(request_id: str, call_ids: list[str], prefix: str) -> str:
    try:
        return _request_ops.resolve_call(request_id, call_ids, prefix)
    except _request_ops.UnknownCall as error:
        raise click.BadParameter(error.message, param_hint="'--from-call'") from None


class Local:
    """The requests of a store, run by this process when replayed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = f"in {redact_url(url)}"

    def _record(self, store: Store, request_id: str) -> RequestRecord:
        record = store.get_request(request_id)
        if record is None:
            raise errors.RequestNotFound(
                f"no request with id {request_id!r} {self.where}"
            )
        return record

    def newest(
        self, application: str | None, status: str | None, limit: int
    ) -> tuple[list[RequestRecord], dict[str, CallRecord | None]]:
        """The newest requests of the store, with their application calls."""
        with _common.opened(self.url) as store:
            records = store.list_requests(
                application=application,
                status=RequestStatus(status.lower()) if status else None,
                limit=limit,
            )
            return records, {r.id: store.get_call(r.id) for r in records}

    def show(self, request_id: str) -> Shown:
        """One request with its calls, from the store."""
        with _common.opened(self.url) as store:
            record = self._record(store, request_id)
            call_records = store.list_calls(request_id)
            return Shown(
                record=record,
                app_call=next((c for c in call_records if c.id == request_id), None),
                waiting=_request_ops.waiting_for(store, record),
                calls=_request_ops.journal(store, request_id),
                groups={c.id: c.group_id for c in call_records},
            )

    def replay(
        self, request_id: str, from_call: str | None, strict: bool, app: str | None
    ) -> tuple[RequestRecord, list[_request_ops.CallInfo]]:
        """Load the request's code, replay it here with the live display."""
        with _common.opened(self.url) as store:
            record = self._record(store, request_id)
            forced = None
            if from_call:
                ids = [c.id for c in store.list_calls(request_id)]
                forced = _from_call(request_id, ids, from_call)
        _loading.load_request_code(record, app)
        owner = worker.local_owner(self.url)
        with _common.opened(self.url) as store:
            _request_ops.replay(
                store, request_id, from_call=forced, strict=strict, owner=owner
            )
        record = _common.run_live(request_id, self.url)
        with _common.opened(self.url) as store:
            return record, _request_ops.journal(store, request_id)

    def cancel(self, request_id: str) -> _request_ops.Cancelled:
        """Cancel a request of the store."""
        with _common.opened(self.url) as store:
            self._record(store, request_id)
            return _request_ops.cancel(store, request_id)

    def signal(self, request_id: str, name: str, value: Any) -> None:
        """Send a signal to a request of the store."""
        with _common.opened(self.url) as store:
            _request_ops.signal(store, request_id, name, value)


class Remote:
    """The requests of a Cairn server, replayed by the server with its code."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = f"on {url}"

    def _client(self) -> client.Client:
        from cairn import client

        return client.Client(self.url)

    def newest(
        self, application: str | None, status: str | None, limit: int
    ) -> tuple[list[RequestRecord], dict[str, CallRecord | None]]:
        """The newest requests of the server, page after page."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        with self._client() as http:
            while len(found) < limit:
                page = http.requests(
                    application,
                    limit=min(limit - len(found), 100),
                    cursor=cursor,
                    status=status.lower() if status else None,
                )
                found += page["requests"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
        return [_remote.record_from_metadata(item) for item in found], {}

    def _finished(self, http: client.Client, metadata: dict[str, Any]) -> RequestRecord:
        record = _remote.record_from_metadata(metadata)
        if record.status is RequestStatus.SUCCEEDED:
            output, _ = http.output_bytes(record.application, record.id)
            record = dataclasses.replace(record, output=output)
        return record

    def show(self, request_id: str) -> Shown:
        """One request with its calls, from the server."""
        with self._client() as http:
            metadata = _found(http, request_id)
            record = self._finished(http, metadata)
        runs = metadata["function_runs"]
        return Shown(
            record=record,
            app_call=None,
            waiting=None,
            calls=_remote.calls_from_metadata(metadata),
            groups={run["id"]: run.get("group_id") for run in runs},
        )

    def replay(
        self, request_id: str, from_call: str | None, strict: bool, app: str | None
    ) -> tuple[RequestRecord, list[_request_ops.CallInfo]]:
        """The server replays the request with the code it serves (``app`` is
        not used); wait for the end."""
        with self._client() as http:
            metadata = _found(http, request_id)
            application = metadata["application_name"]
            forced = None
            if from_call:
                runs = metadata.get("function_runs")
                ids = [str(run["id"]) for run in runs] if isinstance(runs, list) else []
                forced = _from_call(request_id, ids, from_call)
            http.replay(application, request_id, from_call=forced, strict=strict)
            for _ in http.events(application, request_id, after=None):
                pass
            metadata = http.request(application, request_id)
            record = self._finished(http, metadata)
        return record, _remote.calls_from_metadata(metadata)

    def cancel(self, request_id: str) -> _request_ops.Cancelled:
        """Cancel a request on the server."""
        with self._client() as http:
            metadata = _found(http, request_id)
            result = http.cancel(metadata["application_name"], request_id)
        return _request_ops.Cancelled(
            status=RequestStatus(result["status"]), cancelled=bool(result["cancelled"])
        )

    def signal(self, request_id: str, name: str, value: Any) -> None:
        """Send a signal to a request on the server."""
        with self._client() as http:
            metadata = _found(http, request_id)
            http.signal(metadata["application_name"], request_id, name, value)


def _found(http: client.Client, request_id: str) -> dict[str, Any]:
    from cairn import client

    try:
        return http.request(None, request_id)
    except client.ServerError as error:
        if error.status_code == 404:
            raise click.UsageError(
                f"no request with id {request_id!r} on {http.url}"
            ) from None
        raise
