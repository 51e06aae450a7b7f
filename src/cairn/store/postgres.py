"""The shared store: one PostgreSQL database that many workers on many hosts use.

Same semantics as the SQLite store, with concurrency handled by the database rather
than by a single writer. Transactions run at READ COMMITTED with row locks where
SQLite relied on serialized writers:

- claims pick a row with ``FOR UPDATE SKIP LOCKED`` and update it in one statement,
  so two workers never claim one call and never wait on each other;
- every commit of a call takes its request's row lock before it appends events or
  looks at the request's end, so event sequence numbers are never reused and
  exactly one transaction sees a request's last call finish and ends the request.
  Checkpoint commits write their own (claimed) call rows before taking it, so the
  lock is held for one statement, the end check and the commit: with many workers
  on one map, time under that lock is what they queue for. (Deadlocks, should two
  transactions ever cross, are retried like lost connections.)
- ``max_concurrency`` counts a function's running calls under a transaction-level
  advisory lock per function, so the cap holds across workers.

A transaction that writes news sends a ``NOTIFY`` (delivered if and only if it
commits); ``change_token`` counts them on a dedicated ``LISTEN`` connection. A
notifying commit holds PostgreSQL's database-wide notify lock through its WAL
flush, so claims do not notify (unless a request starts) and checkpoint commits
notify at most every 50 ms per store, and always when they end a request.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg

from cairn import errors
from cairn.types import CallStatus, RequestStatus

from . import _browse, _flow, _replays, _rows, _schedules, _sqlbase, _waits
from . import _pgsteps as steps
from ._pg import Database, Q
from ._pglink import Connection
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
from .errors import RequestExists, RollbackWith

T = TypeVar("T")

_CALL_COLUMNS = Q["call_columns"]
_REQUEST_COLUMNS = Q["request_columns"]
_CLAIMED = Q["claimed_columns"]
_CLAIM = {
    name: Q[name].replace("{claimed}", _CLAIMED)
    for name in ("claim_any", "claim_in_group", "claim_one", "claim_batch_in_group")
}
_RELEASE_CALLS = Q["release_calls"].replace("{call_columns}", _CALL_COLUMNS)
# An idle worker asks the database whether work is due at least this often, even
# when no notification arrived (a safety net; notifications are not lost).
_RECHECK_IDLE_S = 2.0
# How often a store's commits of checkpoints notify listeners, at most (commits
# that end a request always do). Event streams poll each second besides.
_NOTIFY_EVERY_S = 0.05
_GROUP_BATCH = 16


class PostgresStore(_browse.Browsing, _waits.Waiting, _schedules.Scheduling):
    """The store on one PostgreSQL database (``postgresql://user@host:port/db``)."""

    _browse_dialect = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self._db = Database(url)
        self._fallback_token = 0
        self._notified_at = 0.0
        self._idle_token: int | None = None
        self._idle_scope: ClaimScope | None = None
        self._idle_until_ms = 0.0
        self._idle_recheck_at = 0.0

    @property
    def schema_before(self) -> int:
        """The schema version the database had when opened (0: opening created it)."""
        return self._db.schema_before

    def close(self) -> None:
        """Close every connection."""
        self._db.close()

    def reopen(self) -> PostgresStore:
        """A new store (its own connections) on the same database."""
        return PostgresStore(self.url)

    def _browse_rows(self, query: str, params: Mapping[str, Any]) -> list[Any]:
        return self._all(query, params)  # a named query of the package, as Q's

    def _browse_ids(self, ids: Sequence[str]) -> list[str]:
        return list(ids)

    _wait_ids = _browse_ids

    def _waits_write(self, body: Callable[[Any], T]) -> T:
        return self._db.write(body)

    def _waits_read(self, body: Callable[[Any], T]) -> T:
        return self._db.read(body)

    # -- requests -----------------------------------------------------------------------
    def create_request(self, request: NewRequest, root: CallKey, args: bytes) -> None:
        """Insert a request and its pending application call."""
        if not self.create_requests([(request, root, args)])[0]:
            raise RequestExists(f"request {request.id!r} already exists")

    def create_requests(
        self, batch: Sequence[tuple[NewRequest, CallKey, bytes]]
    ) -> list[bool]:
        """Insert requests and their application calls in one transaction."""

        return self._db.write(
            lambda conn: _sqlbase.insert_requests(steps.executor(conn), batch)
        )

    def get_request(self, request_id: str) -> RequestRecord | None:
        """The request, or None."""
        row = self._one(
            f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = %s",
            (request_id,),
            binary=True,
        )
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
        clauses: list[LiteralString] = []
        params: list[Any] = []
        if application is not None:
            clauses.append("application = %s")
            params.append(application)
        if status is not None:
            clauses.append("status = %s")
            params.append(str(status))
        if before_ms is not None:
            clauses.append("created_at_ms < %s")
            params.append(before_ms)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._all(
            f"SELECT {_REQUEST_COLUMNS} FROM requests {where} "
            "ORDER BY created_at_ms DESC LIMIT %s",
            (*params, limit),
            binary=True,
        )
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

        def body(conn: Connection) -> int:
            return _replays.start(
                steps.executor(conn),
                request_id,
                from_call=from_call,
                strict=strict,
                now_ms=now_ms,
                owner=owner,
            )

        return self._db.write(body)

    def delete_request(self, request_id: str) -> bool:
        """Delete a request and everything recorded for it (the foreign keys
        cascade to its calls, attempts, events and state); False if there was none."""
        rows = self._db.write(
            lambda conn: conn.execute(
                "DELETE FROM requests WHERE id = %s RETURNING id", (request_id,)
            ).fetchall()
        )
        return bool(rows)

    def finish_request(
        self, request_id: str, outcome: RequestOutcome, now_ms: float
    ) -> None:
        """Record how a request ended."""

        def body(conn: Connection) -> None:
            if steps.lock_request(conn, request_id):
                steps.finish(conn, request_id, outcome, now_ms)

        self._db.write(body)

    def set_progress(
        self, request_id: str, progress: dict[str, object], event: Event
    ) -> None:
        """Record the latest progress and append its event."""

        def body(conn: Connection) -> None:
            steps.append(conn, request_id, [event])
            conn.execute(
                "UPDATE requests SET progress_json = %s WHERE id = %s",
                (json.dumps(progress), request_id),
            )

        self._db.write(body)

    # -- calls ------------------------------------------------------------------------------
    def get_call(self, call_id: str) -> CallRecord | None:
        """One call, without blobs."""
        row = self._one(f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = %s", (call_id,))
        return _rows.call(row) if row else None

    def get_call_output(self, call_id: str) -> bytes | None:
        """The committed output of a call."""
        return self._blob("SELECT output FROM calls WHERE id = %s", call_id)

    def get_call_args(self, call_id: str) -> bytes | None:
        """The recorded arguments of a call."""
        return self._blob("SELECT args FROM calls WHERE id = %s", call_id)

    def get_state_writes(self, call_id: str) -> bytes | None:
        """The request-state writes a committed call made."""
        return self._blob("SELECT state_writes FROM calls WHERE id = %s", call_id)

    def _all(
        self, query: LiteralString, params: Any = None, *, binary: bool = False
    ) -> list[Any]:
        return self._db.read(
            lambda conn: conn.execute(query, params, binary=binary).fetchall()
        )

    def _one(
        self, query: LiteralString, params: Any = None, *, binary: bool = False
    ) -> Any:
        return self._db.read(
            lambda conn: conn.execute(query, params, binary=binary).fetchone()
        )

    def _blob(self, query: LiteralString, *params: Any) -> bytes | None:
        row = self._one(query, params, binary=True)
        return None if row is None or row[0] is None else bytes(row[0])

    def list_calls(self, request_id: str) -> list[CallRecord]:
        """Every call of a request in start order."""
        rows = self._all(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE request_id = %s "
            "ORDER BY started_at_ms IS NULL, started_at_ms, seq",
            (request_id,),
        )
        return [_rows.call(row) for row in rows]

    def list_children(self, request_id: str, parent_id: str) -> list[CallRecord]:
        """The recorded children of a call in start order."""
        rows = self._all(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE request_id = %s "
            "AND parent_id = %s AND kind <> 'map_item' AND kind <> 'reduce_step' "
            "ORDER BY seq",
            (request_id, parent_id),
        )
        return [_rows.call(row) for row in rows]

    def list_recorded_children(
        self, request_id: str, parent_id: str, from_seq: int, limit: int
    ) -> list[RecordedChild]:
        """In-process children from ``from_seq`` on, with succeeded outputs."""
        rows = self._all(
            Q["recorded_children"],
            (request_id, parent_id, from_seq, limit),
            binary=True,
        )
        return [_rows.recorded_child(row) for row in rows]

    def list_attempts(self, request_id: str) -> list[AttemptRecord]:
        """Every attempt of every call of a request."""
        rows = self._all(Q["list_attempts"], {"request_id": request_id})
        return [_rows.attempt(row) for row in rows]

    def enqueue_calls(
        self, calls: list[tuple[CallKey, bytes | None, float]], run: int
    ) -> None:
        """Make dispatched calls runnable."""
        if not calls:
            return

        def body(conn: Connection) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(
                    Q["insert_pending_call"],
                    [
                        _rows.pending_params(key, args, run, not_before)
                        for key, args, not_before in calls
                    ],
                )

        self._db.write(body)

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
        if call_id is not None:
            query = _CLAIM["claim_one"]
        elif group_id is not None:
            query = _CLAIM["claim_in_group"]
        else:
            query = _CLAIM["claim_any"]
        params: dict[str, Any] = {
            "worker_id": worker_id,
            "executor": executor,
            "now_ms": now_ms,
            "group_id": group_id,
            "call_id": call_id,
            "full": [],
            "full_keys": [],
            "affinity_ms": _sqlbase.RETRY_AFFINITY_MS,
            **_scope_params(scope),
        }
        if call_id is not None or group_id is not None:
            # Waiting callers ask often and mostly find nothing: one read says so
            # without the round trips of a transaction.
            due = Q["due_call"] if call_id is not None else Q["due_in_group"]
            if self._one(due, params) is None:
                return None

        def body(conn: Connection) -> ClaimedCall | None:
            # Skip functions already at their cap (a hint, read without a lock) …
            full = steps.at_cap(conn, caps) if caps else []
            if limits:
                empty, params["full_keys"] = _flow.blocked(
                    steps.executor(conn), limits, now_ms
                )
                full += empty
            params["full"] = full
            row = conn.execute(query, params, binary=True).fetchone()
            if row is None:
                return None
            record = _rows.call(row[:20])
            cap = caps.get(record.function) if caps else None
            # … and settle the race for the last slots under the function's lock.
            if cap is not None and steps.running(conn, record.function) > cap:
                raise RollbackWith(None)
            if limits and not _flow.admit(
                steps.executor(conn), limits, record.function, row[24], now_ms
            ):
                raise RollbackWith(None)
            if record.kind == "app":
                conn.execute(
                    Q["mark_request_running"],
                    {"request_id": record.request_id, "now_ms": now_ms},
                )
            return steps.claimed(row)

        # Only a request that starts is news to listeners; other claims are not.
        return self._db.write(
            body,
            notify=lambda claimed: claimed is not None and claimed.record.kind == "app",
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
        params = {
            "worker_id": worker_id,
            "executor": executor,
            "now_ms": now_ms,
            "group_id": group_id,
            "limit": limit,
            **_scope_params(scope),
        }
        if self._one(Q["due_in_group"], params) is None:
            return []
        rows = self._db.write(
            lambda conn: conn.execute(
                _CLAIM["claim_batch_in_group"], params, binary=True
            ).fetchall(),
            notify=False,
        )
        return sorted((steps.claimed(row) for row in rows), key=lambda c: c.record.seq)

    def start_capped(
        self, call: RunningCall, cap: int | None, limits: FlowLimits | None = None
    ) -> bool:
        """Mark an in-process call running if its function is below ``cap`` and
        its ``limits`` let it start."""

        def body(conn: Connection) -> bool:
            if cap is not None and steps.running(conn, call.key.function) >= cap:
                return False
            function, key = call.key.function, call.key.concurrency_key
            if limits and not _flow.admit(
                steps.executor(conn),
                limits,
                function,
                key,
                call.started_at_ms,
                counted=False,
            ):
                return False  # admit wrote nothing when it refused
            conn.execute(Q["mark_running"], steps.running_params(call))
            return True

        return self._db.write(body)

    def mark_running(self, calls: list[RunningCall]) -> None:
        """Make in-process calls visible as running."""
        if not calls:
            return

        def body(conn: Connection) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(
                    Q["mark_running"], [steps.running_params(c) for c in calls]
                )

        self._db.write(body)

    def commit_success(self, success: CallSuccess) -> None:
        """Commit a checkpoint with everything that goes with it."""
        self.commit_successes([success])

    def commit_successes(self, successes: Sequence[CallSuccess]) -> None:
        """Commit several checkpoints in one transaction (all or none)."""
        if not successes:
            return

        def body(conn: Connection) -> bool:
            # The call rows first, with no request locked: they are this worker's
            # claimed calls, which no other writer waits for. Then each request's
            # row, in one order, taken by appending its events (one statement) and
            # held only for that, the end-of-request check and the commit: with
            # many workers on one request, round trips under its lock are what
            # everyone queues for.
            with conn.cursor() as cursor:
                cursor.executemany(
                    Q["upsert_success"], [_sqlbase.success_params(s) for s in successes]
                )
            for request_id in sorted({s.key.request_id for s in successes}):
                if not any(
                    s.events for s in successes if s.key.request_id == request_id
                ):
                    steps.lock_request(conn, request_id)
            now_ms = max(s.finished_at_ms for s in successes)
            return steps.after_calls(conn, successes, now_ms)

        self._db.write(body, notify=self._notify_progress, pipelined=True)

    def _notify_progress(self, ended: bool) -> bool:
        """Whether a commit of checkpoints wakes listeners: always when it ended a
        request (engines wait for that), else at most every _NOTIFY_EVERY_S from
        this store, so that a map's thousands of item commits do not queue on
        PostgreSQL's notify lock while streams still see them within a moment."""
        now = time.monotonic()
        if ended or now - self._notified_at >= _NOTIFY_EVERY_S:
            self._notified_at = now
            return True
        return False

    def record_failure(self, failure: CallFailure) -> None:
        """Record a failed attempt."""
        key = failure.key
        error_json = json.dumps(failure.error)

        def body(conn: Connection) -> None:
            steps.lock_request(conn, key.request_id)
            conn.execute(
                Q["upsert_failure"],
                _sqlbase.failure_params(failure, error_json),
            )
            conn.execute(
                Q["insert_attempt"],
                _sqlbase.attempt_params(failure, error_json),
            )
            steps.after_calls(conn, [failure], failure.finished_at_ms)

        self._db.write(body)

    def executors_of_cancelled(self, worker_id: str) -> list[int]:
        """Executors of a worker holding running calls of cancelled requests."""
        rows = self._all(
            "SELECT DISTINCT c.executor FROM calls c JOIN requests r "
            "ON r.id = c.request_id WHERE c.worker_id = %s "
            "AND c.status = 'running' AND r.status = 'cancelled'",
            (worker_id,),
        )
        return [row[0] for row in rows if row[0] is not None]

    def count_requests(self) -> dict[RequestStatus, int]:
        """How many requests are in each status."""
        rows = self._all("SELECT status, count(*) FROM requests GROUP BY status")
        return {RequestStatus(status): int(count) for status, count in rows}

    def succeeded_args_in_group(self, group_id: str) -> dict[str, bytes | None]:
        """The group's checkpointed calls and the arguments they were recorded with."""
        rows = self._all(
            "SELECT id, args FROM calls WHERE group_id = %s AND status = 'succeeded'",
            (group_id,),
            binary=True,
        )
        return {row[0]: None if row[1] is None else bytes(row[1]) for row in rows}

    def invalidate_checkpoints(self, call_ids: list[str]) -> None:
        """Mark checkpointed calls stale, so that enqueueing them runs them again."""
        self._db.write(
            lambda conn: conn.execute(
                "UPDATE calls SET status = 'stale' WHERE status = 'succeeded' "
                "AND id = ANY(%s)",
                (call_ids,),
            )
        )

    def group_counts(self, group_id: str) -> dict[CallStatus, int]:
        """How many calls of a group are in each status."""
        rows = self._all(
            "SELECT status, count(*) FROM calls WHERE group_id = %s GROUP BY status",
            (group_id,),
        )
        return {CallStatus(status): int(count) for status, count in rows}

    def group_outputs(self, group_id: str) -> Iterator[tuple[int, bytes | None]]:
        """Outputs of a group's calls in item order, a few at a time."""
        try:
            with self._db.connection() as conn, conn.transaction():
                with conn.cursor(name="cairn_group_outputs", binary=True) as cursor:
                    cursor.itersize = _GROUP_BATCH
                    cursor.execute(
                        "SELECT seq, CASE WHEN status = 'succeeded' THEN output END "
                        "FROM calls WHERE group_id = %s ORDER BY seq",
                        (group_id,),
                    )
                    for seq, output in cursor:
                        yield int(seq), None if output is None else bytes(output)
        except psycopg.Error as error:
            raise errors.StoreError(
                f"reading the outputs of group {group_id!r} failed: {error}"
            ) from None

    def release_calls(self, worker_id: str, executor: int | None) -> list[CallRecord]:
        """Put a dead executor's running calls back to pending."""
        rows = self._db.write(
            lambda conn: conn.execute(
                _RELEASE_CALLS, {"worker_id": worker_id, "executor": executor}
            ).fetchall()
        )
        return [_rows.call(row) for row in rows]

    def release_dead_workers(self, now_ms: float) -> int:
        """Hand back the calls of workers that stopped heartbeating (or whose process
        on this host is gone); return how many calls became runnable again."""
        holders = self._all(Q["workers_holding_work"])
        suspects = [
            worker_id
            for worker_id, host, pid, beat in holders
            if _sqlbase.worker_is_dead(host, pid, beat, now_ms)
        ]
        if not suspects:
            return 0

        def body(conn: Connection) -> int:
            # Look again under the workers' row locks: one may have come back.
            rows = conn.execute(Q["lock_workers"], {"ids": suspects}).fetchall()
            released = 0
            for worker_id, host, pid, beat in rows:
                if not _sqlbase.worker_is_dead(host, pid, beat, now_ms):
                    continue
                released += len(
                    conn.execute(
                        _RELEASE_CALLS, {"worker_id": worker_id, "executor": None}
                    ).fetchall()
                )
                conn.execute(Q["free_owned_requests"], {"dead": [worker_id]})
                conn.execute(Q["forget_functions"], {"worker_id": worker_id})
                conn.execute("DELETE FROM workers WHERE id = %s", (worker_id,))
            return released

        return self._db.write(body)

    def check(self) -> None:
        """Raise StoreReplaced if the database (or its Cairn tables) went away."""
        self._db.check()

    def heartbeat(self, worker_id: str, host: str, pid: int, now_ms: float) -> None:
        """Record that a worker is alive (no wake-up: nobody waits for this)."""
        self._db.write(
            lambda conn: conn.execute(
                Q["heartbeat"],
                {"id": worker_id, "host": host, "pid": pid, "now_ms": now_ms},
            ),
            notify=False,
        )

    def serve_functions(self, worker_id: str, versions: Mapping[str, str]) -> None:
        """Record the functions a serving worker has loaded."""

        def body(conn: Connection) -> None:
            conn.execute(Q["forget_functions"], {"worker_id": worker_id})
            with conn.cursor() as cursor:
                cursor.executemany(
                    Q["serve_function"],
                    [
                        {"worker_id": worker_id, "function": name, "code_version": v}
                        for name, v in versions.items()
                    ],
                )

        self._db.write(body)

    def serving_workers(self, function: str, now_ms: float) -> dict[str, str]:
        """Live serving workers that have loaded ``function``."""
        rows = self._all(
            Q["serving_workers"],
            {"function": function, "fresh_after_ms": now_ms - _sqlbase.WORKER_STALE_MS},
        )
        return {str(worker_id): str(version) for worker_id, version in rows}

    def adopt_request(self, request_id: str, owner: str) -> None:
        """Make an unfinished request nobody owns ``owner``'s."""
        self._db.write(
            lambda conn: conn.execute(
                Q["adopt_request"], {"request_id": request_id, "owner": owner}
            )
        )

    def unserved_functions(self, request_id: str, now_ms: float) -> list[str]:
        """Functions of pending calls no live serving worker has loaded."""
        rows = self._all(
            Q["unserved_functions"],
            {
                "request_id": request_id,
                "fresh_after_ms": now_ms - _sqlbase.WORKER_STALE_MS,
            },
        )
        return [str(row[0]) for row in rows]

    def flow_waits(
        self, request_id: str, now_ms: float
    ) -> list[tuple[str, str, str | None]]:
        """What holds back the request's pending calls (see ``_flow.waits``)."""
        return _flow.waits(
            lambda name, params: _Rows(self._all(Q[name], params)),
            request_id,
            now_ms,
        )

    def unfinished_dispatched(self, request_id: str) -> int:
        """How many dispatched calls of a request are pending or running."""
        row = self._one(Q["count_unfinished_dispatched"], {"request_id": request_id})
        return int(row[0]) if row else 0

    def runnable_exists(self, now_ms: float, scope: ClaimScope | None = None) -> bool:
        """Whether any dispatched call of the scope waits for an executor.

        Idle workers call this in a loop: while no commit was notified since the
        database said "nothing due before T", the answer is no without a query.
        """
        token = self.change_token()
        if (
            token == self._idle_token
            and scope == self._idle_scope
            and now_ms < self._idle_until_ms
            and time.monotonic() < self._idle_recheck_at
        ):
            return False
        if self._one(Q["due_now"], {"now_ms": now_ms, **_scope_params(scope)}):
            self._idle_token = None
            return True
        row = self._one(Q["next_due"], _scope_params(scope))
        next_due = row[0] if row and row[0] is not None else math.inf
        if next_due <= now_ms:
            self._idle_token = None
            return True
        self._idle_token = token
        self._idle_scope = scope
        self._idle_until_ms = next_due
        self._idle_recheck_at = time.monotonic() + _RECHECK_IDLE_S
        return False

    # -- events and state --------------------------------------------------------------------
    def append_events(self, request_id: str, events: list[Event]) -> None:
        """Append events."""
        if not events:
            return
        self._db.write(lambda conn: steps.append(conn, request_id, events))

    def list_events(
        self, request_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events after ``after_seq``."""
        rows = self._all(
            "SELECT seq, kind, payload, created_at_ms FROM events "
            "WHERE request_id = %s AND seq > %s ORDER BY seq LIMIT %s",
            (request_id, after_seq, limit),
        )
        return [
            EventRecord(
                request_id=request_id,
                seq=int(row[0]),
                kind=row[1],
                payload=json.loads(row[2]),
                created_at_ms=row[3],
            )
            for row in rows
        ]

    def state_get(self, request_id: str, key: str) -> bytes | None:
        """A request-state value."""
        return self._blob(
            "SELECT value FROM request_state WHERE request_id = %s AND key = %s",
            request_id,
            key,
        )

    def state_set(self, request_id: str, key: str, value: bytes) -> None:
        """Set a request-state value."""
        self._db.write(
            lambda conn: conn.execute(
                Q["state_set"], {"request_id": request_id, "key": key, "value": value}
            )
        )

    def change_token(self) -> int:
        """Counts commits: this process's at once, other processes' as PostgreSQL
        notifies them. While the listening connection is down, every call returns a
        new value, so that waiters look at the store instead of missing a change."""
        count = self._db.change_count()
        if count is None:
            self._fallback_token += 1
            return -self._fallback_token
        return count

    def iter_served(self, request_id: str, run: int) -> Iterator[str]:
        """Ids of calls served from checkpoints in a run."""
        rows = self._all(
            "SELECT id FROM calls WHERE request_id = %s AND served_run = %s",
            (request_id, run),
        )
        return iter([row[0] for row in rows])


class _Rows:
    """Rows already read, as the cursor ``_flow`` reads them from."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Any]:
        return self.rows


def _scope_params(scope: ClaimScope | None) -> dict[str, Any]:
    if scope is None:
        return {"owner": None, "served": None}
    served = None if scope.functions is None else list(scope.functions)
    return {"owner": scope.owner, "served": served}
