"""What can be done to a request, written once: create it, read its journal,
replay it, cancel it, delete it, find a call by a prefix of its id.

Each operation takes an open ``Store``; the caller says which: ``Request`` its
thread's store (``_store_cache``), the HTTP API a store of its pool
(``server/_stores.py``, so that the pool's bound on connections holds), the CLI
the store it opened. None of them opens a store of its own.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from cairn import (
    _calls,
    _decorators,
    _ids,
    _limits,
    _registry,
    _serialization,
    errors,
)
from cairn._execution import waits as _waits
from cairn.store import CallKey, NewRequest, RequestOutcome, RequestRecord, Store
from cairn.types import CallStatus, FailureReason, RequestStatus

Submission = tuple[NewRequest, CallKey, bytes]
"""A request to create, its application call, and that call's arguments."""


@dataclass(frozen=True, kw_only=True)
class AttemptInfo:
    """One attempt of a call."""

    attempt: int
    """1-based number, counted over every run of the request."""
    run: int
    """The run (1 = original, 2 = first replay, ...) it belonged to."""
    outcome: str
    """``success``, ``failure``, ``timed_out`` or ``crashed``."""
    duration_s: float | None
    """How long it ran."""
    error: dict[str, Any] | None
    """Type, message and traceback text of a failure."""
    retry_delay_s: float | None
    """The backoff before the next attempt, if one followed."""
    code_version: str | None = None
    """The version of the code that ran it (a hash of its function's module)."""


@dataclass(frozen=True, kw_only=True)
class CallInfo:
    """One function call of a request, as ``Request.calls()`` reports it."""

    id: str
    """Durable id."""
    function: str
    """Function name."""
    kind: str
    """``app``, ``call``, ``map_item``, ``map`` (a map over a Future's output),
    ``reduce``, ``reduce_step`` or ``wait`` (a journaled ``Future.wait``)."""
    parent_id: str | None
    """The calling call's id."""
    seq: int
    """Position among the parent's calls (or the item's index)."""
    status: CallStatus
    """Current status."""
    attempts: list[AttemptInfo]
    """Every attempt, oldest first."""
    started_at_ms: float | None
    """Start of the latest attempt."""
    finished_at_ms: float | None
    """End of the latest attempt."""
    served_from_checkpoint: bool
    """The latest run took this call's output from its checkpoint."""
    ran_in_latest_run: bool
    """The latest run executed this call."""
    error: dict[str, Any] | None
    """The latest failure."""

    @property
    def duration_s(self) -> float | None:
        """Duration of the latest attempt."""
        if self.started_at_ms is None or self.finished_at_ms is None:
            return None
        return (self.finished_at_ms - self.started_at_ms) / 1000.0


class UnknownCall(errors.SDKUsageError):
    """The request has no call with that id (or prefix)."""


@dataclass(frozen=True, kw_only=True)
class Cancelled:
    """What a cancel left."""

    status: RequestStatus
    """The request's status after it."""
    cancelled: bool
    """Whether this cancel stopped the request (False: it had finished)."""


# -- create -----------------------------------------------------------------------


def _app_name(app: Any) -> str:
    if isinstance(app, _decorators.Function):
        spec = app._spec
    elif isinstance(app, str):
        found = _registry.find(app)
        if found is None:
            raise errors.SDKUsageError(
                f"no application named {app!r} is defined in the loaded code"
            )
        spec = found
    else:
        raise errors.SDKUsageError(
            f"run_local_application() takes an application function or its name, got {app!r}"
        )
    _decorators.check_runnable(spec)
    return spec.name


def _code_ref(name: str) -> str | None:
    spec = _registry.get(name)
    module = sys.modules.get(spec.module)
    path = getattr(module, "__file__", None)
    if spec.module == "__main__" or not spec.module:
        return path
    return spec.module if path is None else f"{spec.module}@{path}"


def new_request(
    app: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
    owner: str | None = None,
    priority: int = 0,
) -> Submission:
    """A request to create, its application call and that call's arguments, with
    the input validated (bad input fails here with a clear message, not in a worker).
    """
    name = _app_name(app)
    spec = _registry.get(name)
    boundary = _serialization.boundary(spec.fn)
    payload = _serialization.encode_json_input(args, kwargs)
    data = json.loads(payload)
    boundary.bind_input(data["args"], data["kwargs"], name)
    request_id = request_id or _ids.new_request_id()
    request = NewRequest(
        id=request_id,
        application=name,
        code_ref=_code_ref(name),
        input=payload,
        headers=dict(headers or {}),
        created_at_ms=_calls.now_ms(),
        owner=owner,
        priority=_limits.priority(priority, "priority"),
    )
    return request, CallKey.application_call(request_id, name), payload


def create(store: Store, submission: Submission) -> str:
    """Create a prepared request (pending); its id."""
    store.create_request(*submission)
    return submission[0].id


# -- read -------------------------------------------------------------------------


def record(store: Store, request_id: str) -> RequestRecord:
    """The request's record.

    Raises:
        RequestNotFound: the store has no such request.
    """
    found = store.get_request(request_id)
    if found is None:
        raise errors.RequestNotFound(f"no request with id {request_id!r}")
    return found


def journal(store: Store, request_id: str) -> list[CallInfo]:
    """Every call of the request in start order, with its attempts."""
    latest_run = record(store, request_id).run
    attempts: dict[str, list[AttemptInfo]] = {}
    for attempt in store.list_attempts(request_id):
        attempts.setdefault(attempt.call_id, []).append(
            AttemptInfo(
                attempt=attempt.attempt,
                run=attempt.run,
                outcome=attempt.outcome,
                duration_s=(
                    None
                    if attempt.started_at_ms is None
                    else (attempt.finished_at_ms - attempt.started_at_ms) / 1000.0
                ),
                error=attempt.error,
                retry_delay_s=attempt.retry_delay_s,
                code_version=attempt.code_version,
            )
        )
    calls = []
    for call in store.list_calls(request_id):
        ran = [a for a in attempts.get(call.id, []) if a.run == latest_run]
        calls.append(
            CallInfo(
                id=call.id,
                function=call.function,
                kind=call.kind,
                parent_id=call.parent_id,
                seq=call.seq,
                status=call.status,
                attempts=sorted(attempts.get(call.id, []), key=lambda a: a.attempt),
                started_at_ms=call.started_at_ms,
                finished_at_ms=call.finished_at_ms,
                served_from_checkpoint=call.served_run == latest_run and not ran,
                ran_in_latest_run=bool(ran),
                error=call.error,
            )
        )
    return calls


def resolve_call(request_id: str, call_ids: list[str], prefix: str) -> str:
    """The call of ``call_ids`` whose id is ``prefix`` or, alone, starts with it.

    Raises:
        UnknownCall: none does, or several do.
    """
    if prefix in call_ids:
        return prefix
    matches = [i for i in call_ids if i.startswith(prefix)]
    if len(matches) == 1:
        return matches[0]
    what = "several calls" if matches else "no call"
    raise UnknownCall(
        f"request {request_id} has {what} with an id starting {prefix!r} "
        "(see 'cairn requests show')"
    )


def waiting_for(store: Store, request: RequestRecord) -> str | None:
    """What an unfinished request waits for, or None: a worker that serves a
    function of its pending calls (none is alive; for a request nobody runs
    alone), a rate limit, a slot of a concurrency key (flow control), a timer,
    a signal or its children (``sleeping until …``, ``waiting: signal 'approval'``).
    """
    if request.status.finished:
        return None
    now_ms = _calls.now_ms()
    reasons = []
    missing = [] if request.owner else store.unserved_functions(request.id, now_ms)
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        reasons.append(f"waiting for a worker that serves {names}")
    for function, kind, key in store.flow_waits(request.id, now_ms):
        if kind == "rate":
            reasons.append(f"waiting for the rate limit of `{function}`")
        else:
            reasons.append(f"waiting for a slot of `{function}` for key {key!r}")
    reasons += [_waits.describe(wait) for wait in store.list_waits(request.id)]
    return "; ".join(reasons) or None


# -- change -----------------------------------------------------------------------


def replay(
    store: Store,
    request_id: str,
    *,
    from_call: str | None = None,
    strict: bool = False,
    owner: str | None = None,
) -> int:
    """Start a new run of the request (pending); its number.

    Raises:
        UnknownCall: ``from_call`` is not a call of the request.
        RequestRunning: a run of it is still pending or running.
    """
    if from_call is not None:
        call = store.get_call(from_call)
        if call is None or call.request_id != request_id:
            raise UnknownCall(
                f"request {request_id} has no call {from_call[:80]!r} to replay from"
            )
    return store.start_replay(
        request_id,
        from_call=from_call,
        strict=strict,
        now_ms=_calls.now_ms(),
        owner=owner,
    )


def signal(store: Store, request_id: str, name: str, value: Any) -> int:
    """Send the signal ``name`` with ``value`` to a request; its number.

    Raises:
        SDKUsageError: the name is not a signal name.
        RequestNotFound: there is no such request.
        RequestFinished: the request has finished.
    """
    return _waits.send(store, request_id, name, value, _calls.now_ms())


def cancel(store: Store, request_id: str) -> Cancelled:
    """Stop the request: nothing more runs for it (no-op once finished).

    Raises:
        RequestNotFound: the store has no such request.
    """
    before = record(store, request_id).status
    if not before.finished:
        store.finish_request(
            request_id,
            RequestOutcome(
                status=RequestStatus.CANCELLED, failure_reason=FailureReason.CANCELLED
            ),
            _calls.now_ms(),
        )
    now = store.get_request(request_id)
    after = before if now is None else now.status
    return Cancelled(
        status=after,
        cancelled=not before.finished and after is RequestStatus.CANCELLED,
    )


def delete(store: Store, request_id: str) -> None:
    """Forget a finished request and everything it recorded.

    Raises:
        RequestNotFound: the store has no such request.
        RequestNotFinished: it has not finished (cancel it first).
    """
    status = record(store, request_id).status
    if not status.finished:
        raise errors.RequestNotFinished(
            f"request {request_id} is {status}: cancel it before deleting it"
        )
    if not store.delete_request(request_id):
        raise errors.RequestNotFound(f"no request {request_id!r}")
