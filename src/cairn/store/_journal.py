"""The ``Journal`` role of the SQL store: a request's calls as its running code
checkpoints and replays them, their failed attempts, events, progress and state.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cairn import _events
from cairn.types import CallStatus, RequestStatus

from . import _rows, _steps
from ._dialect import PROGRESS, Statement, Tx
from ._records import (
    CallFailure,
    CallRecord,
    CallSuccess,
    Event,
    RecordedChild,
    RequestOutcome,
    RequestRecord,
)
from ._sqlbase import (
    AfterCalls,
    SqlBase,
    attempt_params,
    failure_params,
    success_params,
)


class JournalOps(SqlBase):
    """The journal of a SQL store."""

    def get_call(self, call_id: str) -> CallRecord | None:
        """One call, without blobs."""
        row = self._one("get_call", {"call_id": call_id})
        return _rows.call(row) if row else None

    def get_call_output(self, call_id: str) -> bytes | None:
        """The committed output of a call."""
        return self._blob("call_output", {"call_id": call_id})

    def get_call_args(self, call_id: str) -> bytes | None:
        """The recorded arguments of a call."""
        return self._blob("call_args", {"call_id": call_id})

    def get_state_writes(self, call_id: str) -> bytes | None:
        """The request-state writes a committed call made."""
        return self._blob("call_state_writes", {"call_id": call_id})

    def list_children(self, request_id: str, parent_id: str) -> list[CallRecord]:
        """The recorded children of a call in start order."""
        rows = self._all(
            "list_children", {"request_id": request_id, "parent_id": parent_id}
        )
        return [_rows.call(row) for row in rows]

    def list_recorded_children(
        self, request_id: str, parent_id: str, from_seq: int, limit: int
    ) -> list[RecordedChild]:
        """In-process children from ``from_seq`` on, with succeeded outputs."""
        params = {
            "request_id": request_id,
            "parent_id": parent_id,
            "from_seq": from_seq,
            "limit": limit,
        }
        rows = self._all("recorded_children", params)
        return [_rows.recorded_child(row) for row in rows]

    def commit_success(
        self, success: CallSuccess, *, read_back: bool = False
    ) -> RequestRecord | None:
        """Commit a checkpoint, its events and, for the last call, the request's
        end. ``read_back``: return the request's record if this commit ended it,
        read in its transaction (on PostgreSQL, with no round trip of its own)."""
        return self._commit([success], success.key.request_id if read_back else None)

    def commit_successes(self, successes: Sequence[CallSuccess]) -> None:
        """Commit several checkpoints in one transaction (all or none)."""
        self._commit(successes, None)

    def _commit(
        self, successes: Sequence[CallSuccess], read_back: str | None
    ) -> RequestRecord | None:
        """``read_back``: the request whose record to return, if this ends it."""
        if not successes:
            return None
        plan = AfterCalls.of(successes)
        # A row that already numbers its events (a call committed twice) keeps
        # them: the upsert renumbers it, and the calls_keep_events trigger makes
        # rows of its old events (on PostgreSQL, of the version it locked).
        rows = [success_params(s, plan) for s in successes]
        if not plan.finishes and not plan.finish_if_last:
            # Nothing to read before the commit (no request can end here): the
            # rows, served marks and events go in one round trip, each request's
            # event numbers taken (and, on PostgreSQL, its row locked, in one
            # order) before the rows that use them.
            notify = self._notify_progress(False)
            if len(rows) == 1 and not plan.served and not plan.events:
                # One call, no other rows: one statement, which PostgreSQL
                # commits alone.
                one = "commit_checkpoint" if plan.counts else "upsert_success"
                self._dialect.write_all([(one, rows[0])], notify=notify)
                return None
            statements: list[Statement] = [
                _steps.numbering(request_id, plan.counts[request_id])
                for request_id in sorted(plan.counts)
            ]
            statements.append(("upsert_success", rows))
            statements += _steps.marks_and_events(plan)
            self._dialect.write_all(statements, notify=notify)
            return None

        if _ends_alone(plan, rows):
            record = self._end_with_checkpoint(
                successes[0], plan.finishes[0][1], rows[0]
            )
            if record is not None:
                return record if read_back is not None else None

        def body(tx: Tx) -> tuple[bool, Callable[[], Any] | None]:
            # Each request's row, in one order, taken with its event numbers (one
            # statement) and held for the call rows, the end-of-request check and
            # the commit: the statements before the check go without waiting for
            # answers, so that with many workers on one request few round trips
            # are made under its lock, which is what everyone queues for.
            if len(rows) == 1 and plan.counts:
                tx.execute("commit_checkpoint", rows[0])  # numbers, lock and row
            else:
                _steps.number(tx, plan, (s.key.request_id for s in successes))
                tx.executemany("upsert_success", rows)
            now_ms = max(s.finished_at_ms for s in successes)
            may_end = _steps.after_calls(tx, plan, now_ms)
            if read_back is None:
                return may_end, None
            request = {"request_id": read_back}
            return may_end, tx.read_after_commit("get_request", request)

        _, ended = self._dialect.write(
            body,
            notify=lambda result: self._notify_progress(result[0]),
            pipelined=True,
        )
        row = None if ended is None else ended()
        record = None if row is None else _rows.request(row)
        return record if record is not None and record.status.finished else None

    def _end_with_checkpoint(
        self, success: CallSuccess, outcome: RequestOutcome, row: dict[str, Any]
    ) -> RequestRecord | None:
        """Commit a succeeded application call and its request's end in one
        statement; the request's record, or None if it wrote nothing (the request
        had ended, or a dispatched call it started may still run)."""
        key, now_ms = success.key, success.finished_at_ms
        finished = _events.request_finished(
            key.request_id, key.function, outcome, now_ms
        )
        params = {
            **row,
            "request_output": outcome.output,
            "payload": json.dumps(finished.payload),
            "now_ms": now_ms,
        }
        notify = self._notify_progress(True)
        answer = self._dialect.write_one("end_with_checkpoint", params, notify=notify)
        if answer is not None:
            return _rows.request(answer[0]) if answer else None
        # Its answer lost after it committed: it wrote the call's row (as this
        # attempt finished it) if and only if it ended the request.
        call = self.get_call(key.id)
        if call is None or (call.status, call.run, call.finished_at_ms) != (
            CallStatus.SUCCEEDED,
            success.run,
            now_ms,
        ):
            return None
        request = self._one("get_request", {"request_id": key.request_id})
        return _rows.request(request)

    def record_failure(self, failure: CallFailure) -> None:
        """Record a failed attempt, and the call's final failure if it is final."""
        error_json = json.dumps(failure.error)

        plan = AfterCalls.of([failure])

        def body(tx: Tx) -> None:
            _steps.number(tx, plan, [failure.key.request_id])
            tx.execute("upsert_failure", failure_params(failure, error_json))
            tx.execute("insert_attempt", attempt_params(failure, error_json))
            _steps.after_calls(tx, plan, failure.finished_at_ms)

        self._dialect.write(body, pipelined=True)

    def append_events(self, request_id: str, events: list[Event]) -> None:
        """Append events with the next sequence numbers."""
        if events:
            counts = self._dialect.write_all(_steps.appending(request_id, events))
            _steps.appended(request_id, events, counts[1] if counts else None)

    def set_progress(
        self, request_id: str, progress: dict[str, object], event: Event
    ) -> None:
        """Record the latest progress of a request and append its event."""

        progress_json = json.dumps(progress)
        counts = self._dialect.write_all(
            [
                *_steps.appending(request_id, [event]),
                (
                    "set_progress",
                    {"request_id": request_id, "progress_json": progress_json},
                ),
            ],
            notify=PROGRESS,
        )
        _steps.appended(request_id, [event], counts[1] if counts else None)

    def state_get(self, request_id: str, key: str) -> bytes | None:
        """A request-state value."""
        return self._blob("state_get", {"request_id": request_id, "key": key})

    def state_set(self, request_id: str, key: str, value: bytes) -> None:
        """Set a request-state value."""
        params = {"request_id": request_id, "key": key, "value": value}
        self._dialect.write_all([("state_set", params)])

    def iter_served(self, request_id: str, run: int) -> Iterator[str]:
        """Ids of calls served from checkpoints in a run."""
        rows = self._all("served_calls", {"request_id": request_id, "run": run})
        return iter([row[0] for row in rows])


def _ends_alone(plan: AfterCalls, rows: list[dict[str, Any]]) -> bool:
    """Whether a commit is one succeeded application call that may end its
    request, with nothing else to write: ``end_with_checkpoint``'s case."""
    return (
        len(rows) == 1
        and len(plan.finishes) == 1
        and plan.finishes[0][1].status is RequestStatus.SUCCEEDED
        and not (plan.served or plan.events or plan.finish_if_last)
    )
