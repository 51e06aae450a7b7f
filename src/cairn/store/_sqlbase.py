"""The base of the SQL store's operations (``SqlBase``: its dialect and a read
in one line), the parameters of its writes, and what it knows of workers."""

from __future__ import annotations

import functools
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cairn.types import CallStatus

from ._dialect import PROGRESS, Dialect, Notify
from ._records import (
    CallFailure,
    CallKey,
    CallSuccess,
    ClaimScope,
    Event,
    RequestOutcome,
    RunningCall,
)
from ._rows import key_params

# How often a store's commits of progress notify listeners, at most (commits that
# end a request always do). A notifying commit holds PostgreSQL's database-wide
# notify lock through its WAL flush; event streams poll each second besides.
_NOTIFY_EVERY_S = 0.05


class SqlBase:
    """What every part of the SQL store stands on: the dialect that runs its
    named queries, and one-line reads."""

    url: str
    _dialect: Dialect
    _notified_at = 0.0

    def _notify_progress(self, ended: bool) -> Notify:
        """Whether a commit that shows progress (checkpoints, a request created
        already claimed) wakes listeners: always when it ended a request (engines
        wait for that), else at most every _NOTIFY_EVERY_S from this store, so
        that a map's thousands of item commits do not queue on PostgreSQL's
        notify lock while streams still see them within a moment. As progress
        only: it makes no work due, so idle workers need not look."""
        now = time.monotonic()
        if ended or now - self._notified_at >= _NOTIFY_EVERY_S:
            self._notified_at = now
            return PROGRESS
        return False

    def _one(self, name: str, params: Mapping[str, Any]) -> Any:
        return self._dialect.read(lambda tx: tx.execute(name, params).fetchone())

    def _all(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        return self._dialect.read(lambda tx: tx.execute(name, params).fetchall())

    def _blob(self, name: str, params: Mapping[str, Any]) -> bytes | None:
        row = self._one(name, params)
        return None if row is None or row[0] is None else bytes(row[0])


# A worker whose heartbeat is older than this is taken for dead.
WORKER_STALE_MS = 15_000.0
# A dispatched call retried after its code raised is the executor's that ran it
# for this long past its due time: free again, that executor claims it first, so
# that the retry keeps the process's warm state (caches, connections, module
# globals), as Tensorlake's local mode does. Then any executor may take it.
RETRY_AFFINITY_MS = 1_000.0


def alive(pid: int) -> bool:
    """Whether a process of this host is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@functools.cache
def this_host() -> str:
    """Where this process's pids mean something: the host name, the boot and the
    PID namespace. Workers record it with their heartbeat; another worker's pid is
    checked only when it matches, since two containers can share a host name (or a
    machine) without sharing pids."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        pid_namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:")
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()} {boot} {pid_namespace}"


def holder_is_alive(host: str, pid: int) -> bool:
    """Whether a worker with a fresh heartbeat is really there.

    A worker on this host whose process is gone is dead now, not once its
    heartbeat goes stale; one on another host is taken at its heartbeat's word.
    """
    return host != this_host() or alive(pid)


def worker_is_dead(host: str, pid: int, heartbeat_at_ms: float, now_ms: float) -> bool:
    """A worker that stopped heartbeating, or whose process on this host is gone."""
    if heartbeat_at_ms < now_ms - WORKER_STALE_MS:
        return True
    return host == this_host() and not alive(pid)


def success_params(success: CallSuccess, plan: AfterCalls) -> dict[str, Any]:
    """The parameters of the ``upsert_success`` query (its event numbers: ``plan``'s)."""
    return {
        "event_count": plan.counts.get(success.key.request_id, 0),
        "event_number": plan.from_row.get(success.key.id),
        **key_params(success.key),
        "args": success.args,
        "output": success.output,
        "run": success.run,
        "run_attempts": success.run_attempts,
        "attempts": success.attempt,
        "state_writes": success.state_writes,
        "started_at_ms": success.started_at_ms,
        "finished_at_ms": success.finished_at_ms,
        "code_version": success.code_version,
    }


def failure_params(failure: CallFailure, error_json: str) -> dict[str, Any]:
    """The parameters of the ``upsert_failure`` query."""
    return {
        **key_params(failure.key),
        "status": str(failure.status),
        "args": failure.args,
        "error_json": error_json,
        "run": failure.run,
        "run_attempts": failure.run_attempts,
        "attempts": failure.attempt,
        "not_before_ms": failure.not_before_ms,
        "started_at_ms": failure.started_at_ms,
        "finished_at_ms": failure.finished_at_ms,
        # A retry after the code raised waits a moment for the executor that ran
        # it (see RETRY_AFFINITY_MS); one after a timeout or a crash does not,
        # since that process is gone.
        "retry_here": int(
            failure.status is CallStatus.PENDING and failure.outcome == "failure"
        ),
    }


def running_params(call: RunningCall) -> dict[str, Any]:
    """The parameters of the ``mark_running`` query."""
    return {
        **key_params(call.key),
        "run": call.run,
        "worker_id": call.worker_id,
        "executor": call.executor,
        "started_at_ms": call.started_at_ms,
        "concurrency_key": call.key.concurrency_key,
    }


def scope_params(scope: ClaimScope | None) -> dict[str, Any]:
    """The parameters that say which dispatched calls a claimer may take."""
    if scope is None:
        return {"owner": None, "served": None}
    served = None if scope.functions is None else list(scope.functions)
    return {"owner": scope.owner, "served": served}


def attempt_params(failure: CallFailure, error_json: str) -> dict[str, Any]:
    """The parameters of the ``insert_attempt`` query: a failed attempt's row."""
    return {
        "call_id": failure.key.id,
        "attempt": failure.attempt,
        "request_id": failure.key.request_id,
        "run": failure.run,
        "outcome": failure.outcome,
        "error_json": error_json,
        "started_at_ms": failure.started_at_ms,
        "finished_at_ms": failure.finished_at_ms,
        "retry_delay_s": failure.retry_delay_s,
        "code_version": failure.code_version,
    }


@dataclass
class AfterCalls:
    """What committing outcomes of calls does besides their rows, grouped per request,
    so that a batch of map items costs one event append and one end-of-request check
    per request, not one per item.

    Each request's events of the commit are numbered 1 to ``counts[request]`` in
    the outcomes' order (its counter moves by that much): ``events`` holds the rows
    to insert with their numbers, ``from_row`` the number of the FunctionRunCreated
    of each call whose two events are read from its row."""

    served: list[tuple[int, str]] = field(default_factory=list)
    events: dict[str, list[tuple[int, Event]]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    from_row: dict[str, int] = field(default_factory=dict)
    finishes: list[tuple[CallKey, RequestOutcome]] = field(default_factory=list)
    finish_if_last: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, done: Sequence[CallSuccess | CallFailure]) -> AfterCalls:
        plan = cls()
        for outcome in done:
            key = outcome.key
            plan.served += [(outcome.served_run, i) for i in outcome.served_ids]
            plan._number(outcome)
            if outcome.request_outcome is not None:
                plan.finishes.append((key, outcome.request_outcome))
            elif key.dispatched and key.kind != "app":
                if key.request_id not in plan.finish_if_last:
                    plan.finish_if_last.append(key.request_id)
        return plan

    def _number(self, outcome: CallSuccess | CallFailure) -> None:
        request_id = outcome.key.request_id
        count = self.counts.get(request_id, 0)
        if isinstance(outcome, CallSuccess) and outcome.events_from_row:
            self.from_row[outcome.key.id] = count + 1
            count += 2
        for event in outcome.events:
            count += 1
            self.events.setdefault(request_id, []).append((count, event))
        if count:
            self.counts[request_id] = count
