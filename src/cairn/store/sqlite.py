"""The embedded store: one SQLite file in WAL mode, opened, migrated and locked
for writes by ``_sqlite_file``; here, what the store reads and writes in it.

``synchronous=FULL`` by default: a committed checkpoint survives a power cut. ``?synchronous=normal`` keeps commits across process crashes
only, and is several times faster.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from cairn import _events
from cairn.types import CallStatus, RequestStatus

from . import _browse, _flow, _replays, _rows, _schedules, _sql, _waits
from ._records import (
    AttemptRecord,
    CallFailure,
    CallKey,
    CallRecord,
    CallSuccess,
    ClaimedCall,
    ClaimScope,
    Event,
    EventRecord,
    FlowLimits,
    NewRequest,
    RecordedChild,
    RequestOutcome,
    RequestRecord,
    RunningCall,
)
from ._sqlbase import (
    RETRY_AFFINITY_MS,
    WORKER_STALE_MS,
    AfterCalls,
    Execute,
    attempt_params,
    failure_params,
    insert_requests,
    success_params,
    worker_is_dead,
)
from ._sqlite_file import StoreFile
from .errors import RequestExists

T = TypeVar("T")
Q = _sql.queries("sqlite")
_CALL_COLUMNS = Q["call_columns"]
_REQUEST_COLUMNS = Q["request_columns"]


class SQLiteStore(_browse.Browsing, _waits.Waiting, _schedules.Scheduling):
    """The store on one SQLite file."""

    _browse_dialect = "sqlite"

    def __init__(self, url: str) -> None:
        self.url = url
        self._file = StoreFile(url)
        self.path = self._file.path
        self._conn = self._file.conn
        self._write = self._file.write  # one write transaction: BEGIN IMMEDIATE

    @property
    def schema_before(self) -> int:
        """The schema version the file had when opened (0: opening created it)."""
        return self._file.schema_before

    def close(self) -> None:
        """Close the connection."""
        self._file.close()

    def reopen(self) -> SQLiteStore:
        """A new connection to the same file."""
        return SQLiteStore(self.url)

    def _browse_rows(self, query: str, params: Mapping[str, Any]) -> list[Any]:
        return self._conn.execute(query, params).fetchall()

    def _browse_ids(self, ids: Sequence[str]) -> str:
        # SQLite binds no lists: a list goes as JSON, read with json_each.
        return json.dumps(list(ids))

    _wait_ids = _browse_ids

    def _waits_write(self, body: Callable[[Any], T]) -> T:
        with self._write() as conn:
            return body(conn)

    def _waits_read(self, body: Callable[[Any], T]) -> T:
        return body(self._conn)

    # -- requests -----------------------------------------------------------------------
    def create_request(self, request: NewRequest, root: CallKey, args: bytes) -> None:
        """Insert a request and its pending application call."""
        if not self.create_requests([(request, root, args)])[0]:
            raise RequestExists(f"request {request.id!r} already exists")

    def create_requests(
        self, batch: Sequence[tuple[NewRequest, CallKey, bytes]]
    ) -> list[bool]:
        """Insert requests and their application calls in one transaction."""
        with self._write() as conn:
            return insert_requests(_executor(conn), batch)

    def get_request(self, request_id: str) -> RequestRecord | None:
        """The request, or None."""
        row = self._conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,)
        ).fetchone()
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
        clauses: list[str] = []
        params: list[Any] = []
        if application is not None:
            clauses.append("application = ?")
            params.append(application)
        if status is not None:
            clauses.append("status = ?")
            params.append(str(status))
        if before_ms is not None:
            clauses.append("created_at_ms < ?")
            params.append(before_ms)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn.execute(
            f"SELECT {_REQUEST_COLUMNS} FROM requests {where} "
            "ORDER BY created_at_ms DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [_rows.request(row) for row in rows]

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
        with self._write() as conn:
            return _replays.start(
                _executor(conn),
                request_id,
                from_call=from_call,
                strict=strict,
                now_ms=now_ms,
                owner=owner,
            )

    def delete_request(self, request_id: str) -> bool:
        """Delete a request and everything recorded for it; False if there was none."""
        with self._write() as conn:
            # attempts has no request_id index: reach its rows through their calls.
            conn.execute(
                "DELETE FROM attempts WHERE call_id IN "
                "(SELECT id FROM calls WHERE request_id = ?)",
                (request_id,),
            )
            for table in ("events", "request_state", "calls"):
                conn.execute(f"DELETE FROM {table} WHERE request_id = ?", (request_id,))
            deleted = conn.execute("DELETE FROM requests WHERE id = ?", (request_id,))
            return deleted.rowcount > 0

    def finish_request(
        self, request_id: str, outcome: RequestOutcome, now_ms: float
    ) -> None:
        """Record how a request ended."""
        with self._write() as conn:
            self._finish(conn, request_id, outcome, now_ms)

    def set_progress(
        self, request_id: str, progress: dict[str, object], event: Event
    ) -> None:
        """Record the latest progress and append its event."""
        with self._write() as conn:
            conn.execute(
                "UPDATE requests SET progress_json = ? WHERE id = ?",
                (json.dumps(progress), request_id),
            )
            self._append(conn, request_id, [event])

    # -- calls ----------------------------------------------------------------------------
    def get_call(self, call_id: str) -> CallRecord | None:
        """One call, without blobs."""
        row = self._conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = ?", (call_id,)
        ).fetchone()
        return _rows.call(row) if row else None

    def get_call_output(self, call_id: str) -> bytes | None:
        """The committed output of a call."""
        return self._blob("output", call_id)

    def get_call_args(self, call_id: str) -> bytes | None:
        """The recorded arguments of a call."""
        return self._blob("args", call_id)

    def get_state_writes(self, call_id: str) -> bytes | None:
        """The request-state writes a committed call made."""
        return self._blob("state_writes", call_id)

    def _blob(self, column: str, call_id: str) -> bytes | None:
        row = self._conn.execute(
            f"SELECT {column} FROM calls WHERE id = ?", (call_id,)
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def list_calls(self, request_id: str) -> list[CallRecord]:
        """Every call of a request in start order."""
        rows = self._conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE request_id = ? "
            "ORDER BY started_at_ms IS NULL, started_at_ms, seq",
            (request_id,),
        ).fetchall()
        return [_rows.call(row) for row in rows]

    def list_children(self, request_id: str, parent_id: str) -> list[CallRecord]:
        """The recorded children of a call in start order."""
        rows = self._conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE request_id = ? AND parent_id = ? "
            "AND kind <> 'map_item' AND kind <> 'reduce_step' ORDER BY seq",
            (request_id, parent_id),
        ).fetchall()
        return [_rows.call(row) for row in rows]

    def list_recorded_children(
        self, request_id: str, parent_id: str, from_seq: int, limit: int
    ) -> list[RecordedChild]:
        """In-process children from ``from_seq`` on, with succeeded outputs."""
        rows = self._conn.execute(
            Q["recorded_children"], (request_id, parent_id, from_seq, limit)
        ).fetchall()
        return [_rows.recorded_child(row) for row in rows]

    def list_attempts(self, request_id: str) -> list[AttemptRecord]:
        """Every attempt of every call of a request."""
        rows = self._conn.execute(
            Q["list_attempts"], {"request_id": request_id}
        ).fetchall()
        return [_rows.attempt(row) for row in rows]

    def enqueue_calls(
        self, calls: list[tuple[CallKey, bytes | None, float]], run: int
    ) -> None:
        """Make dispatched calls runnable."""
        if not calls:
            return
        with self._write() as conn:
            conn.executemany(
                Q["insert_pending_call"],
                [
                    _rows.pending_params(key, args, run, not_before)
                    for key, args, not_before in calls
                ],
            )

    def claim_call(
        self,
        worker_id: str,
        executor: int,
        now_ms: float,
        *,
        group_id: str | None = None,
        call_id: str | None = None,
        caps: Mapping[str, int] | None = None,
        scope: ClaimScope | None = None,
        limits: FlowLimits | None = None,
    ) -> ClaimedCall | None:
        """Take one runnable dispatched call of a function not at its cap."""
        params: dict[str, Any] = {
            "worker_id": worker_id,
            "executor": executor,
            "now_ms": now_ms,
            "group_id": group_id,
            "call_id": call_id,
            "full": "[]",
            "full_keys": "[]",
            "affinity_ms": RETRY_AFFINITY_MS,
            **_scope_params(scope),
        }
        if call_id is not None:
            query = Q["claim_one"]
        elif group_id is not None:
            query = Q["claim_in_group"]
        else:
            query = Q["claim_any"]
        try:
            return self._claim(query, params, caps, limits)
        except _Refused:
            return None

    def _claim(
        self,
        query: str,
        params: dict[str, Any],
        caps: Mapping[str, int] | None,
        limits: FlowLimits | None,
    ) -> ClaimedCall | None:
        now_ms = params["now_ms"]
        with self._write() as conn:
            full = _at_cap(conn, caps) if caps else []
            if limits:
                empty, params["full_keys"] = _flow.blocked(
                    _executor(conn), limits, now_ms
                )
                full += empty
                params["full_keys"] = json.dumps(params["full_keys"])
            params["full"] = json.dumps(full)
            row = conn.execute(query, params).fetchone()
            if row is None:
                return None
            if limits and not _flow.admit(
                _executor(conn), limits, row[1], row[2], now_ms
            ):
                raise _Refused  # roll the claim back: the call waits
            data = conn.execute(
                f"SELECT {_CALL_COLUMNS}, args FROM calls WHERE id = ?", (row[0],)
            ).fetchone()
            record = _rows.call(data[:-1])
            request = conn.execute(
                "SELECT run, strict_replay, application FROM requests WHERE id = ?",
                (record.request_id,),
            ).fetchone()
            if record.kind == "app":
                conn.execute(
                    Q["mark_request_running"],
                    {"request_id": record.request_id, "now_ms": now_ms},
                )
        return ClaimedCall(
            record=record,
            args=None if data[-1] is None else bytes(data[-1]),
            request_run=int(request[0]),
            strict_replay=bool(request[1]),
            application=request[2],
        )

    def claim_group(
        self,
        worker_id: str,
        executor: int,
        now_ms: float,
        group_id: str,
        limit: int,
        scope: ClaimScope | None = None,
    ) -> list[ClaimedCall]:
        """Take up to ``limit`` runnable calls of one map group, in item order."""
        with self._write() as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    Q["claim_batch_in_group"],
                    {
                        "worker_id": worker_id,
                        "executor": executor,
                        "now_ms": now_ms,
                        "group_id": group_id,
                        "limit": limit,
                        **_scope_params(scope),
                    },
                ).fetchall()
            ]
            if not ids:
                return []
            rows = [
                conn.execute(
                    f"SELECT {_CALL_COLUMNS}, args FROM calls WHERE id = ?", (call_id,)
                ).fetchone()
                for call_id in ids
            ]
            request = conn.execute(
                "SELECT run, strict_replay, application FROM requests WHERE id = ?",
                (rows[0][1],),
            ).fetchone()
        claimed = [
            ClaimedCall(
                record=_rows.call(row[:-1]),
                args=None if row[-1] is None else bytes(row[-1]),
                request_run=int(request[0]),
                strict_replay=bool(request[1]),
                application=request[2],
            )
            for row in rows
        ]
        return sorted(claimed, key=lambda c: c.record.seq)

    def start_capped(
        self, call: RunningCall, cap: int | None, limits: FlowLimits | None = None
    ) -> bool:
        """Mark an in-process call running if its function is below ``cap`` and
        its ``limits`` let it start."""
        with self._write() as conn:
            if cap is not None and _at_cap(conn, {call.key.function: cap}):
                return False
            function, key = call.key.function, call.key.concurrency_key
            if limits and not _flow.admit(
                _executor(conn),
                limits,
                function,
                key,
                call.started_at_ms,
                counted=False,
            ):
                return False  # admit wrote nothing when it refused
            conn.execute(Q["mark_running"], _running_params(call))
            return True

    def mark_running(self, calls: list[RunningCall]) -> None:
        """Make in-process calls visible as running."""
        if not calls:
            return
        with self._write() as conn:
            conn.executemany(Q["mark_running"], [_running_params(c) for c in calls])

    def commit_success(self, success: CallSuccess) -> None:
        """Commit a checkpoint with everything that goes with it."""
        self.commit_successes([success])

    def commit_successes(self, successes: Sequence[CallSuccess]) -> None:
        """Commit several checkpoints in one transaction (all or none)."""
        if not successes:
            return
        with self._write() as conn:
            conn.executemany(
                Q["upsert_success"], [success_params(s) for s in successes]
            )
            now_ms = max(s.finished_at_ms for s in successes)
            self._after_calls(conn, successes, now_ms)

    def record_failure(self, failure: CallFailure) -> None:
        """Record a failed attempt."""
        error_json = json.dumps(failure.error)
        with self._write() as conn:
            conn.execute(
                Q["upsert_failure"],
                failure_params(failure, error_json),
            )
            conn.execute(
                Q["insert_attempt"],
                attempt_params(failure, error_json),
            )
            self._after_calls(conn, [failure], failure.finished_at_ms)

    def _after_calls(
        self,
        conn: sqlite3.Connection,
        done: Sequence[CallSuccess | CallFailure],
        now_ms: float,
    ) -> None:
        plan = AfterCalls.of(done)
        if plan.served:
            conn.executemany(
                Q["mark_served"], [{"run": run, "id": i} for run, i in plan.served]
            )
        for request_id, events in plan.events.items():
            self._append(conn, request_id, events)
        for request_id, outcome in plan.finishes:
            self._finish(conn, request_id, outcome, now_ms)
        for request_id in plan.finish_if_last:
            self._finish_if_last(conn, request_id, now_ms)

    def _finish(
        self,
        conn: sqlite3.Connection,
        request_id: str,
        outcome: RequestOutcome,
        now_ms: float,
    ) -> None:
        """End a request, unless it succeeded with calls it started still running."""
        if outcome.status is RequestStatus.SUCCEEDED:
            left = conn.execute(
                Q["count_unfinished_dispatched"], {"request_id": request_id}
            ).fetchone()[0]
            if left:
                # Fire-and-forget calls hold the request open; the last one ends it.
                conn.execute(
                    "UPDATE requests SET output = ? WHERE id = ?",
                    (outcome.output, request_id),
                )
                return
        else:
            conn.execute(Q["cancel_pending"], {"request_id": request_id})
        row = conn.execute(
            "SELECT application, status FROM requests WHERE id = ?", (request_id,)
        ).fetchone()
        if row is None or RequestStatus(row[1]).finished:
            return
        conn.execute(
            Q["finish_request"],
            {
                "request_id": request_id,
                "status": str(outcome.status),
                "output": outcome.output,
                "failure_reason": outcome.failure_reason,
                "error_json": json.dumps(outcome.error) if outcome.error else None,
                "now_ms": now_ms,
            },
        )
        self._append(
            conn,
            request_id,
            [_events.request_finished(request_id, row[0], outcome, now_ms)],
        )

    def _finish_if_last(
        self, conn: sqlite3.Connection, request_id: str, now_ms: float
    ) -> None:
        root = conn.execute(
            "SELECT c.status, r.output, r.status FROM calls c JOIN requests r "
            "ON r.id = c.request_id WHERE c.id = ?",
            (request_id,),
        ).fetchone()
        if (
            root is None
            or root[0] != CallStatus.SUCCEEDED
            or RequestStatus(root[2]).finished
        ):
            return
        self._finish(
            conn,
            request_id,
            RequestOutcome(status=RequestStatus.SUCCEEDED, output=root[1]),
            now_ms,
        )

    def executors_of_cancelled(self, worker_id: str) -> list[int]:
        """Executors of a worker holding running calls of cancelled requests."""
        rows = self._conn.execute(
            "SELECT DISTINCT c.executor FROM calls c JOIN requests r "
            "ON r.id = c.request_id WHERE c.worker_id = ? AND c.status = 'running' "
            "AND r.status = 'cancelled'",
            (worker_id,),
        ).fetchall()
        return [row[0] for row in rows if row[0] is not None]

    def count_requests(self) -> dict[RequestStatus, int]:
        """How many requests are in each status."""
        rows = self._conn.execute(
            "SELECT status, count(*) FROM requests GROUP BY status"
        ).fetchall()
        return {RequestStatus(status): count for status, count in rows}

    def succeeded_args_in_group(self, group_id: str) -> dict[str, bytes | None]:
        """The group's checkpointed calls and the arguments they were recorded with."""
        rows = self._conn.execute(
            "SELECT id, args FROM calls WHERE group_id = ? AND status = 'succeeded'",
            (group_id,),
        ).fetchall()
        return {row[0]: None if row[1] is None else bytes(row[1]) for row in rows}

    def invalidate_checkpoints(self, call_ids: list[str]) -> None:
        """Mark checkpointed calls stale, so that enqueueing them runs them again."""
        with self._write() as conn:
            conn.execute(
                "UPDATE calls SET status = 'stale' WHERE status = 'succeeded' "
                "AND id IN (SELECT value FROM json_each(?))",
                (json.dumps(call_ids),),
            )

    def group_counts(self, group_id: str) -> dict[CallStatus, int]:
        """How many calls of a group are in each status."""
        rows = self._conn.execute(
            "SELECT status, count(*) FROM calls WHERE group_id = ? GROUP BY status",
            (group_id,),
        ).fetchall()
        return {CallStatus(status): count for status, count in rows}

    def group_outputs(self, group_id: str) -> Iterator[tuple[int, bytes | None]]:
        """Outputs of a group's calls in item order."""
        cursor = self._conn.execute(
            "SELECT seq, CASE WHEN status = 'succeeded' THEN output END FROM calls "
            "WHERE group_id = ? ORDER BY seq",
            (group_id,),
        )
        for seq, output in cursor:
            yield seq, None if output is None else bytes(output)

    def release_calls(self, worker_id: str, executor: int | None) -> list[CallRecord]:
        """Put a dead executor's running calls back to pending."""
        with self._write() as conn:
            ids = [
                row[0]
                for row in conn.execute(
                    Q["release_calls"], {"worker_id": worker_id, "executor": executor}
                ).fetchall()
            ]
            return [
                _rows.call(row)
                for call_id in ids
                for row in conn.execute(
                    f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = ?", (call_id,)
                )
            ]

    def release_dead_workers(self, now_ms: float) -> int:
        """Hand back the calls of workers that stopped heartbeating (or whose process
        on this host is gone); return how many calls became runnable again."""
        with self._write() as conn:
            workers = conn.execute(Q["workers_holding_work"]).fetchall()
            dead = [
                worker_id
                for worker_id, host, pid, beat in workers
                if worker_is_dead(host, pid, beat, now_ms)
            ]
            released = 0
            for worker_id in dead:
                released += len(
                    conn.execute(
                        Q["release_calls"], {"worker_id": worker_id, "executor": None}
                    ).fetchall()
                )
                conn.execute(
                    Q["free_owned_requests"], {"dead": json.dumps([worker_id])}
                )
                conn.execute(Q["forget_functions"], {"worker_id": worker_id})
                conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
            return released

    def check(self) -> None:
        """The file this connection writes must still be the one at the path."""
        self._file.check()

    def heartbeat(self, worker_id: str, host: str, pid: int, now_ms: float) -> None:
        """Record that a worker is alive."""
        with self._write() as conn:
            conn.execute(
                "INSERT INTO workers (id, host, pid, started_at_ms, heartbeat_at_ms) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "heartbeat_at_ms = excluded.heartbeat_at_ms",
                (worker_id, host, pid, now_ms, now_ms),
            )

    def serve_functions(self, worker_id: str, versions: Mapping[str, str]) -> None:
        """Record the functions a serving worker has loaded."""
        with self._write() as conn:
            conn.execute(Q["forget_functions"], {"worker_id": worker_id})
            conn.executemany(
                Q["serve_function"],
                [
                    {"worker_id": worker_id, "function": name, "code_version": version}
                    for name, version in versions.items()
                ],
            )

    def serving_workers(self, function: str, now_ms: float) -> dict[str, str]:
        """Live serving workers that have loaded ``function``."""
        rows = self._conn.execute(
            Q["serving_workers"],
            {"function": function, "fresh_after_ms": now_ms - WORKER_STALE_MS},
        ).fetchall()
        return {str(worker_id): str(version) for worker_id, version in rows}

    def adopt_request(self, request_id: str, owner: str) -> None:
        """Make an unfinished request nobody owns ``owner``'s."""
        with self._write() as conn:
            conn.execute(Q["adopt_request"], {"request_id": request_id, "owner": owner})

    def unserved_functions(self, request_id: str, now_ms: float) -> list[str]:
        """Functions of pending calls no live serving worker has loaded."""
        rows = self._conn.execute(
            Q["unserved_functions"],
            {"request_id": request_id, "fresh_after_ms": now_ms - WORKER_STALE_MS},
        ).fetchall()
        return [str(row[0]) for row in rows]

    def flow_waits(
        self, request_id: str, now_ms: float
    ) -> list[tuple[str, str, str | None]]:
        """What holds back the request's pending calls (see ``_flow.waits``)."""
        return _flow.waits(_executor(self._conn), request_id, now_ms)

    def unfinished_dispatched(self, request_id: str) -> int:
        """How many dispatched calls of a request are pending or running."""
        return int(
            self._conn.execute(
                Q["count_unfinished_dispatched"], {"request_id": request_id}
            ).fetchone()[0]
        )

    def runnable_exists(self, now_ms: float, scope: ClaimScope | None = None) -> bool:
        """Whether any dispatched call of the scope waits for an executor."""
        row = self._conn.execute(
            Q["runnable_exists"], {"now_ms": now_ms, **_scope_params(scope)}
        ).fetchone()
        return row is not None

    # -- events and state --------------------------------------------------------------------
    def append_events(self, request_id: str, events: list[Event]) -> None:
        """Append events."""
        with self._write() as conn:
            self._append(conn, request_id, events)

    def _append(
        self, conn: sqlite3.Connection, request_id: str, events: list[Event]
    ) -> None:
        first = (
            conn.execute(Q["last_event_seq"], {"request_id": request_id}).fetchone()[0]
            + 1
        )
        conn.executemany(
            Q["insert_event"],
            [
                {
                    "request_id": request_id,
                    "seq": first + offset,
                    "kind": event.kind,
                    "payload": json.dumps(event.payload),
                    "created_at_ms": event.created_at_ms,
                }
                for offset, event in enumerate(events)
            ],
        )

    def list_events(
        self, request_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events after ``after_seq``."""
        rows = self._conn.execute(
            "SELECT seq, kind, payload, created_at_ms FROM events "
            "WHERE request_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (request_id, after_seq, limit),
        ).fetchall()
        return [
            EventRecord(
                request_id=request_id,
                seq=row[0],
                kind=row[1],
                payload=json.loads(row[2]),
                created_at_ms=row[3],
            )
            for row in rows
        ]

    def state_get(self, request_id: str, key: str) -> bytes | None:
        """A request-state value."""
        row = self._conn.execute(
            "SELECT value FROM request_state WHERE request_id = ? AND key = ?",
            (request_id, key),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def state_set(self, request_id: str, key: str, value: bytes) -> None:
        """Set a request-state value."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO request_state (request_id, key, value) VALUES (?, ?, ?)",
                (request_id, key, value),
            )

    def change_token(self) -> int:
        """SQLite's data_version: changes when another connection commits."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def iter_served(self, request_id: str, run: int) -> Iterator[str]:
        """Ids of calls served from checkpoints in a run."""
        for row in self._conn.execute(
            "SELECT id FROM calls WHERE request_id = ? AND served_run = ?",
            (request_id, run),
        ):
            yield row[0]


def _at_cap(conn: sqlite3.Connection, caps: Mapping[str, int]) -> list[str]:
    """Functions whose running calls (across every worker) reached their cap."""
    rows = conn.execute(Q["running_counts"], {"names": json.dumps(list(caps))})
    return [function for function, count in rows if count >= caps[function]]


def _running_params(call: RunningCall) -> dict[str, Any]:
    return {
        **_rows.key_params(call.key),
        "run": call.run,
        "worker_id": call.worker_id,
        "executor": call.executor,
        "started_at_ms": call.started_at_ms,
        "concurrency_key": call.key.concurrency_key,
    }


class _Refused(Exception):
    """A claim's flow limits refused the call it took: roll the claim back."""


def _executor(conn: sqlite3.Connection) -> Execute:
    """Named queries run in ``conn``'s transaction (for ``_replays``, ``_flow``)."""

    def execute(name: str, params: Mapping[str, Any]) -> sqlite3.Cursor:
        # SQLite binds no lists: a list goes as JSON, read with json_each.
        return conn.execute(
            Q[name],
            {
                key: json.dumps(value) if isinstance(value, list) else value
                for key, value in params.items()
            },
        )

    return execute


def _scope_params(scope: ClaimScope | None) -> dict[str, Any]:
    if scope is None:
        return {"owner": None, "served": None}
    served = None if scope.functions is None else json.dumps(scope.functions)
    return {"owner": scope.owner, "served": served}
