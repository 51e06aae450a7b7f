"""The ``Queue`` role of the SQL store: dispatched calls made runnable, claimed by
executors (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: two workers never claim one
call and never wait on each other), started, released, and their map groups.

``max_concurrency`` counts a function's running calls under a lock per function
(``lock_function``), so the cap holds across workers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from typing import Any

from cairn import _events
from cairn.types import CallStatus

from . import _flow, _rows, _steps
from ._dialect import Tx
from ._records import (
    CallKey,
    CallRecord,
    ClaimedCall,
    ClaimScope,
    FlowLimits,
    NewRequest,
    RunningCall,
)
from ._sqlbase import RETRY_AFFINITY_MS, SqlBase, running_params, scope_params
from .errors import DuplicateKey, RequestExists, RollbackWith

# An idle worker asks the database whether work is due at least this often, even
# when no commit was heard of (a safety net; notifications are not lost).
_RECHECK_IDLE_S = 2.0


class QueueOps(SqlBase):
    """The queue of a SQL store."""

    _idle_token: int | None = None
    _idle_scope: ClaimScope | None = None
    _idle_until_ms = 0.0
    _idle_recheck_at = 0.0

    def enqueue_calls(
        self, calls: list[tuple[CallKey, bytes | None, float]], run: int
    ) -> None:
        """Make dispatched calls runnable (key, args, not_before_ms)."""
        if not calls:
            return
        pending = [
            _rows.pending_params(key, args, run, not_before)
            for key, args, not_before in calls
        ]
        self._dialect.write_all([("insert_pending_call", pending)])

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
            query = "claim_one"
        elif group_id is not None:
            query = "claim_in_group"
        else:
            query = "claim_any"
        params = _claim_params(worker_id, executor, now_ms, scope, group_id, call_id)
        if call_id is not None or group_id is not None:
            # Waiting callers ask often and mostly find nothing: one read says so
            # without a write transaction.
            due = "due_call" if call_id is not None else "due_in_group"
            if self._one(due, params) is None:
                return None

        def body(tx: Tx) -> ClaimedCall | None:
            # Skip functions already at their cap (a hint, read without a lock) …
            full = _steps.at_cap(tx, caps) if caps else []
            if limits:
                empty, params["full_keys"] = _flow.blocked(tx.execute, limits, now_ms)
                full += empty
            params["full"] = full
            row = tx.execute(query, params).fetchone()
            if row is None:
                return None
            claimed = _steps.claimed(row)
            function = claimed.record.function
            cap = caps.get(function) if caps else None
            # … and settle the race for the last slots under the function's lock.
            if cap is not None and _steps.running(tx, function) > cap:
                raise RollbackWith(None)
            if limits and not _flow.admit(
                tx.execute, limits, function, row[24], now_ms
            ):
                raise RollbackWith(None)  # roll the claim back: the call waits
            if claimed.record.kind == "app":
                _start_run(tx, claimed, now_ms, resumes=_resumes(tx, claimed.record))
            return claimed

        # Only a request that starts is news to listeners; other claims are not.
        return self._dialect.write(
            body,
            notify=lambda claimed: claimed is not None and claimed.record.kind == "app",
            pipelined=True,
        )

    def create_claimed(
        self,
        request: NewRequest,
        root: CallKey,
        args: bytes,
        worker_id: str,
        executor: int,
        now_ms: float,
    ) -> ClaimedCall:
        """Create a request with its application call claimed by ``executor``.

        Everything it writes is known beforehand, so it is one named query (on
        PostgreSQL, one statement sent alone): the request running, its call
        held, its RequestStarted. A taken id breaks the call's key and writes
        nothing.
        """
        claimed = ClaimedCall(
            record=CallRecord(
                id=root.id,
                request_id=root.request_id,
                parent_id=root.parent_id,
                seq=root.seq,
                function=root.function,
                kind=root.kind,
                group_id=root.group_id,
                dispatched=root.dispatched,
                status=CallStatus.RUNNING,
                error=None,
                run=1,
                run_attempts=0,
                attempts=0,
                served_run=None,
                not_before_ms=0.0,
                worker_id=worker_id,
                executor=executor,
                has_state_writes=False,
                started_at_ms=now_ms,
                finished_at_ms=None,
            ),
            args=args,
            request_run=1,
            strict_replay=False,
            application=request.application,
            fresh=True,
        )
        started = _events.request_started(request.id, root.function, 1, now_ms)
        params = {
            **_rows.request_params(request),
            **_rows.key_params(root),
            "args": args,
            "concurrency_key": root.concurrency_key,
            "worker_id": worker_id,
            "executor": executor,
            "now_ms": now_ms,
            "event_kind": started.kind,
            "event_payload": json.dumps(started.payload),
        }
        try:
            self._dialect.write_all(
                [("create_claimed", params)],
                # Nobody can claim the call: only streams care, as for progress.
                notify=self._notify_progress(False),
            )
        except DuplicateKey:
            raise RequestExists(f"request {request.id!r} already exists") from None
        return claimed

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
            **scope_params(scope),
        }
        if self._one("due_in_group", params) is None:
            return []
        rows = self._dialect.write(
            lambda tx: tx.execute("claim_batch_in_group", params).fetchall(),
            notify=False,
        )
        return sorted((_steps.claimed(row) for row in rows), key=lambda c: c.record.seq)

    def start_capped(
        self, call: RunningCall, cap: int | None, limits: FlowLimits | None = None
    ) -> bool:
        """Mark an in-process call running if its function is below ``cap`` and
        its ``limits`` let it start (taking its rate-limit token)."""

        def body(tx: Tx) -> bool:
            function, key = call.key.function, call.key.concurrency_key
            if cap is not None and _steps.running(tx, function) >= cap:
                return False
            if limits and not _flow.admit(
                tx.execute, limits, function, key, call.started_at_ms, counted=False
            ):
                return False  # admit wrote nothing when it refused
            tx.execute("mark_running", running_params(call))
            return True

        return self._dialect.write(body)

    def mark_running(self, calls: list[RunningCall]) -> None:
        """Make in-process calls visible as running (never over a final status)."""
        if calls:
            params = [running_params(c) for c in calls]
            self._dialect.write_all([("mark_running", params)])

    def runnable_exists(self, now_ms: float, scope: ClaimScope | None = None) -> bool:
        """Whether any dispatched call of the scope waits for an executor.

        Idle workers call this in a loop: where the dialect's change token counts
        every commit, while none that may make work due came since the database
        said "nothing due before T", the answer is no without a query.
        """
        caching = self._dialect.caches_idle
        token = self._dialect.change_token(queue=True) if caching else None
        if (
            caching
            and token == self._idle_token
            and scope == self._idle_scope
            and now_ms < self._idle_until_ms
            and time.monotonic() < self._idle_recheck_at
        ):
            return False
        if not caching:
            return bool(self._one("due_now", {"now_ms": now_ms, **scope_params(scope)}))
        # One query says both whether a call is due and until when none will be.
        row = self._one("next_due", scope_params(scope))
        next_due = row[0] if row and row[0] is not None else math.inf
        if next_due <= now_ms:
            self._idle_token = None
            return True
        self._idle_token = token
        self._idle_scope = scope
        self._idle_until_ms = next_due
        self._idle_recheck_at = time.monotonic() + _RECHECK_IDLE_S
        return False

    def unfinished_dispatched(self, request_id: str) -> int:
        """How many dispatched calls of a request are pending or running."""
        row = self._one("count_unfinished_dispatched", {"request_id": request_id})
        return int(row[0]) if row else 0

    def flow_waits(
        self, request_id: str, now_ms: float
    ) -> list[tuple[str, str, str | None]]:
        """What holds back the request's pending calls (see ``_flow.waits``)."""
        return self._dialect.read(
            lambda tx: _flow.waits(tx.execute, request_id, now_ms)
        )

    def group_counts(self, group_id: str) -> dict[CallStatus, int]:
        """How many calls of a map group are in each status."""
        rows = self._all("group_counts", {"group_id": group_id})
        return {CallStatus(status): int(count) for status, count in rows}

    def group_outputs(self, group_id: str) -> Iterator[tuple[int, bytes | None]]:
        """Outputs of a group's calls in item order, a few at a time."""
        for seq, output in self._dialect.stream(
            "group_outputs", {"group_id": group_id}
        ):
            yield int(seq), None if output is None else bytes(output)

    def succeeded_args_in_group(self, group_id: str) -> dict[str, bytes | None]:
        """The group's checkpointed calls and the arguments they were recorded with."""
        rows = self._all("succeeded_args_in_group", {"group_id": group_id})
        return {row[0]: None if row[1] is None else bytes(row[1]) for row in rows}

    def invalidate_checkpoints(self, call_ids: list[str]) -> None:
        """Mark checkpointed calls stale, so that enqueueing them runs them again."""
        self._dialect.write_all([("invalidate_checkpoints", {"ids": list(call_ids)})])

    def release_calls(self, worker_id: str, executor: int | None) -> list[CallRecord]:
        """Put the running calls of a dead executor (or worker) back to pending."""
        params = {"worker_id": worker_id, "executor": executor}
        rows = self._dialect.write(
            lambda tx: tx.execute("release_calls", params).fetchall()
        )
        return [_rows.call(row) for row in rows]

    def executors_of_cancelled(self, worker_id: str) -> list[int]:
        """Executors of a worker holding running calls of cancelled requests."""
        rows = self._all("executors_of_cancelled", {"worker_id": worker_id})
        return [row[0] for row in rows if row[0] is not None]


def _claim_params(
    worker_id: str,
    executor: int,
    now_ms: float,
    scope: ClaimScope | None,
    group_id: str | None,
    call_id: str | None,
) -> dict[str, Any]:
    """The parameters of the claim queries (no function full yet)."""
    return {
        "worker_id": worker_id,
        "executor": executor,
        "now_ms": now_ms,
        "group_id": group_id,
        "call_id": call_id,
        "full": [],
        "full_keys": [],
        "affinity_ms": RETRY_AFFINITY_MS,
        **scope_params(scope),
    }


def _start_run(tx: Tx, claimed: ClaimedCall, now_ms: float, *, resumes: bool) -> None:
    """The claim of an application call starts a run of its request (unless the
    call parked on a wait and resumes now): in the claim's transaction, not one of
    its own after it (the request is there: its call was just claimed)."""
    request_id = claimed.record.request_id
    tx.execute("mark_request_running", {"request_id": request_id, "now_ms": now_ms})
    if not resumes:
        started = _events.request_started(
            request_id, claimed.record.function, claimed.request_run, now_ms
        )
        _steps.append(tx, request_id, [started])


def _resumes(tx: Tx, record: CallRecord) -> bool:
    """Whether a claimed call is one that parked (its run goes on, not starts)."""
    # A parked call is due at a time > 0; a fresh one at 0 (no query for those).
    if record.not_before_ms <= 0:
        return False
    return tx.execute("parked_on", {"call_id": record.id}).fetchone() is not None
