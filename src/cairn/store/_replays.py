"""Starting a replay, the same on both stores: inside one write transaction, refuse
while a run of the request is still pending or running, then requeue it.

The refusal lives here, in the store's one operation every replay path goes
through (``Request.replay``, the server's replay route, ``cairn requests
replay``), and in the transaction that requeues, so that of two replays started
at once (a double-click, two terminals) exactly one is accepted: the second sees
the first's run pending, and a replay of a run still going would run its side
effects again. A run nobody can finish any more is *abandoned*, and a replay takes it over
(that is how a request recovers after its process died):

- a running call of the request held by a live worker: not abandoned;
- a live engine that will take it: its owner (the process that runs it alone:
  a local run or replay), or, owned by nobody, a serving worker that has loaded
  its application: not abandoned;
- otherwise, abandoned.
"""

from __future__ import annotations

from cairn import errors
from cairn.types import RequestStatus

from ._dialect import Execute
from ._sqlbase import WORKER_STALE_MS, holder_is_alive


def start(
    execute: Execute,
    request_id: str,
    *,
    from_call: str | None,
    strict: bool,
    now_ms: float,
    owner: str | None = None,
) -> int:
    """Requeue the application call under a new run and return its number; the
    run is ``owner``'s alone (a local replay), or any serving worker's (None).

    Raises:
        RequestNotFound: there is no such request.
        RequestRunning: a run of it is still pending or running.
        SDKUsageError: ``from_call`` is not a call of the request.
    """
    run = _admit(execute, request_id, now_ms)
    forced = [] if from_call is None else _fork_set(execute, request_id, from_call)
    new_run = run + 1
    # The calls this run starts again, and its application call, keep their
    # earlier events as rows (the calls_keep_events trigger): their rows change now.
    execute("start_replay_stale", {"request_id": request_id, "forced": forced})
    execute(
        "start_replay_requeue",
        {"request_id": request_id, "run": new_run, "now_ms": now_ms},
    )
    execute("clear_state", {"request_id": request_id})
    execute(
        "start_replay_request",
        {
            "request_id": request_id,
            "run": new_run,
            "strict": int(strict),
            "owner": owner,
        },
    )
    return new_run


def _admit(execute: Execute, request_id: str, now_ms: float) -> int:
    """The request's current run, if a replay may start now."""
    params = {"request_id": request_id, "fresh_after_ms": now_ms - WORKER_STALE_MS}
    row = execute("replay_request", params).fetchone()
    if row is None:
        raise errors.RequestNotFound(f"no request with id {request_id!r}")
    run, status = int(row[0]), RequestStatus(row[1])
    if status.finished:
        return run

    def refuse(why: str) -> errors.RequestRunning:
        return errors.RequestRunning(
            f"request {request_id!r} is already running: its run {run} {why}; "
            "wait for it to finish (or cancel it) before replaying",
            request_id=request_id,
            run=run,
        )

    holders = execute("live_holders", params).fetchall()
    if any(holder_is_alive(host, pid) for host, pid in holders):
        raise refuse("is running on a live worker")
    takers = execute("fresh_workers", params).fetchall()
    if any(holder_is_alive(host, pid) for host, pid in takers):
        raise refuse("is pending, and a live worker will take it")
    return run


def _fork_set(execute: Execute, request_id: str, from_call: str) -> list[str]:
    """The call to replay from, every call started after it, and its ancestors."""
    target = execute(
        "replay_target", {"request_id": request_id, "call_id": from_call}
    ).fetchone()
    if target is None:
        raise errors.SDKUsageError(
            f"request {request_id!r} has no call {from_call!r} to replay from"
        )
    started_at_ms, parent_id = target
    forced = {from_call}
    later = execute(
        "started_since",
        {"request_id": request_id, "since_ms": started_at_ms or 0.0},
    ).fetchall()
    forced |= {row[0] for row in later}
    if parent_id is not None:
        ancestors = execute("ancestors", {"parent_id": parent_id}).fetchall()
        forced |= {row[0] for row in ancestors}
    return sorted(forced)
