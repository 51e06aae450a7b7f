"""The ``Requests`` role of the SQL store: requests submitted, listed, replayed,
ended and deleted."""

from __future__ import annotations

from collections.abc import Sequence

from cairn.types import RequestStatus

from . import _replays, _rows, _steps
from ._dialect import Tx
from ._records import (
    AttemptRecord,
    CallKey,
    CallRecord,
    EventRecord,
    NewRequest,
    RequestOutcome,
    RequestRecord,
)
from ._sqlbase import SqlBase
from .errors import RequestExists


def insert_request(tx: Tx, request: NewRequest, root: CallKey, args: bytes) -> bool:
    """Insert a request and its pending application call in ``tx``; False if the
    id was taken (that request is left as it was)."""
    row = tx.execute("insert_request", _rows.request_params(request)).fetchone()
    if row is not None:
        tx.execute("insert_pending_call", _rows.pending_params(root, args, 1, 0.0))
    return row is not None


class RequestOps(SqlBase):
    """Requests of a SQL store."""

    def create_request(self, request: NewRequest, root: CallKey, args: bytes) -> None:
        """Insert a request and its pending application call."""
        if not self.create_requests([(request, root, args)])[0]:
            raise RequestExists(f"request {request.id!r} already exists")

    def create_requests(
        self, batch: Sequence[tuple[NewRequest, CallKey, bytes]]
    ) -> list[bool]:
        """Insert requests and their application calls in one transaction; False
        where the id was taken (that request is left as it was)."""

        def body(tx: Tx) -> list[bool]:
            return [insert_request(tx, *item) for item in batch]

        return self._dialect.write(body, pipelined=True)

    def get_request(self, request_id: str) -> RequestRecord | None:
        """The request, or None."""
        row = self._one("get_request", {"request_id": request_id})
        return _rows.request(row) if row else None

    def list_requests(
        self,
        *,
        application: str | None = None,
        status: RequestStatus | None = None,
        limit: int = 50,
        before_ms: float | None = None,
    ) -> list[RequestRecord]:
        """Newest first."""
        params = {
            "application": application,
            "status": None if status is None else str(status),
            "before_ms": before_ms,
            "limit": limit,
        }
        return [_rows.request(row) for row in self._all("list_requests", params)]

    def count_requests(self) -> dict[RequestStatus, int]:
        """How many requests are in each status."""
        rows = self._all("count_requests", {})
        return {RequestStatus(status): int(count) for status, count in rows}

    def start_replay(
        self,
        request_id: str,
        *,
        from_call: str | None,
        strict: bool,
        now_ms: float,
        owner: str | None = None,
    ) -> int:
        """Re-queue the application call under a new run number (refused while a
        run of the request is still pending or running: see ``_replays``)."""
        return self._dialect.write(
            lambda tx: _replays.start(
                tx.execute,
                request_id,
                from_call=from_call,
                strict=strict,
                now_ms=now_ms,
                owner=owner,
            )
        )

    def delete_request(self, request_id: str) -> bool:
        """Delete a request and everything recorded for it; False if there was none."""
        rows = self._dialect.write(
            lambda tx: tx.execute(
                "delete_request", {"request_id": request_id}
            ).fetchall()
        )
        return bool(rows)

    def finish_request(
        self, request_id: str, outcome: RequestOutcome, now_ms: float
    ) -> None:
        """Record how a request ended, outside any call commit."""

        def body(tx: Tx) -> None:
            application = _steps.lock_request(tx, request_id)
            if application is not None:
                _steps.finish(tx, request_id, application, outcome, now_ms)

        self._dialect.write(body, pipelined=True)

    def list_calls(self, request_id: str) -> list[CallRecord]:
        """Every call of a request in start order."""
        rows = self._all("list_calls", {"request_id": request_id})
        return [_rows.call(row) for row in rows]

    def failed_calls(self, request_id: str) -> list[CallRecord]:
        """Calls of the request's latest run that failed for good, as they ended."""
        rows = self._all("failed_calls", {"request_id": request_id})
        return [_rows.call(row) for row in rows]

    def list_attempts(self, request_id: str) -> list[AttemptRecord]:
        """Every attempt of every call of a request."""
        rows = self._all("list_attempts", {"request_id": request_id})
        return [_rows.attempt(row) for row in rows]

    def list_events(
        self, request_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events after ``after_seq`` in order."""
        params = {
            "request_id": request_id,
            "after_seq": after_seq,
            "limit": limit,
            "call_limit": limit // 2 + 1,
        }
        events: list[EventRecord] = []
        for row in self._all("list_events", params):
            events += _rows.events(request_id, row, after_seq)
            if len(events) >= limit:
                break
        return events[:limit]

    def last_event_seq(self, request_id: str) -> int:
        """The number of the request's latest event (0: none, or no request)."""
        # Every event, a row or one read from a call row, is numbered from the
        # request's counter in the transaction that records it.
        row = self._one("last_event_seq", {"request_id": request_id})
        return int(row[0]) if row else 0

    def adopt_request(self, request_id: str, owner: str) -> None:
        """Make an unfinished request nobody owns ``owner``'s."""
        params = {"request_id": request_id, "owner": owner}
        self._dialect.write_all([("adopt_request", params)])
