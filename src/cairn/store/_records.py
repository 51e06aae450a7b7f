"""Plain records that cross the store seam. No SQL, no driver types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Defined with the payloads it carries (a leaf module), crossing the seam from here.
from cairn._events import Event as Event
from cairn.types import CallStatus, RequestStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRequest:
    """A request to create, with its application call."""

    id: str
    application: str
    code_ref: str | None
    input: bytes
    headers: dict[str, str]
    created_at_ms: float
    owner: str | None = None
    """The engine that runs it alone (a local run); None: any serving worker."""
    priority: int = 0
    """Claims take the due calls of higher-priority requests first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """A request as stored."""

    id: str
    application: str
    code_ref: str | None
    status: RequestStatus
    failure_reason: str | None
    error: dict[str, Any] | None
    input: bytes
    output: bytes | None
    headers: dict[str, str]
    run: int
    strict_replay: bool
    progress: dict[str, Any] | None
    created_at_ms: float
    started_at_ms: float | None
    finished_at_ms: float | None
    owner: str | None = None
    attempts_failed: bool = True
    """Whether an attempt of its latest run failed (False: no call of the run
    failed for good, and ``failed_calls`` would find none)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimScope:
    """Which dispatched calls an engine may claim: of requests it owns (a local
    run's engine) or of nobody's (a serving worker), and of functions it has
    loaded (all of them when ``functions`` is None)."""

    owner: str | None
    functions: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallKey:
    """Where a call sits in its request: enough to create its row."""

    id: str
    request_id: str
    parent_id: str | None
    seq: int
    function: str
    kind: str
    group_id: str | None
    dispatched: bool
    concurrency_key: str | None = None
    """The value of the argument its function's ``concurrency_key`` names."""

    @classmethod
    def application_call(cls, request_id: str, application: str) -> CallKey:
        """The key of a request's application call (its id is the request's)."""
        return cls(
            id=request_id,
            request_id=request_id,
            parent_id=None,
            seq=0,
            function=application,
            kind="app",
            group_id=request_id,
            dispatched=True,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """A function's rate limit as the store keeps it: a token bucket that holds
    up to ``burst`` tokens and refills at ``per_ms`` tokens a millisecond; a call
    takes one when it starts."""

    per_ms: float
    burst: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowLimits:
    """Limits a claim respects, counted across every worker (the functions'
    ``rate_limit`` and, with a ``concurrency_key``, ``max_concurrency`` per key)."""

    rates: Mapping[str, Bucket] = field(default_factory=dict)
    key_caps: Mapping[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.rates or self.key_caps)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """A call as stored, without its argument and output blobs."""

    id: str
    request_id: str
    parent_id: str | None
    seq: int
    function: str
    kind: str
    group_id: str | None
    dispatched: bool
    status: CallStatus
    error: dict[str, Any] | None
    run: int
    run_attempts: int
    attempts: int
    served_run: int | None
    not_before_ms: float
    worker_id: str | None
    executor: int | None
    has_state_writes: bool
    started_at_ms: float | None
    finished_at_ms: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedChild:
    """What a replay needs of a child call already in the store: its output, if any,
    and the arguments it was recorded with (a changed call is not served)."""

    id: str
    seq: int
    status: CallStatus
    output: bytes | None
    has_state_writes: bool
    args: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedCall:
    """A dispatched call that one executor now holds, with its arguments."""

    record: CallRecord
    args: bytes | None
    request_run: int
    strict_replay: bool
    application: str
    fresh: bool = False
    """Created with its claim just now: nothing is recorded under it yet."""
    awaited: bool = False
    """Its request's caller waits in the engine that handed it to this executor,
    which therefore reports the request's end to it (read in the ending commit)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One attempt of a call."""

    call_id: str
    attempt: int
    run: int
    outcome: str
    error: dict[str, Any] | None
    started_at_ms: float | None
    finished_at_ms: float
    retry_delay_s: float | None
    code_version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRecord:
    """An event as stored, with its per-request sequence number."""

    request_id: str
    seq: int
    kind: str
    payload: dict[str, Any]
    created_at_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestOutcome:
    """How a request finished; written in the same transaction as its last call."""

    status: RequestStatus
    output: bytes | None = None
    failure_reason: str | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSuccess:
    """A committed checkpoint: everything written when a call succeeds."""

    key: CallKey
    run: int
    attempt: int
    run_attempts: int
    args: bytes | None
    output: bytes
    state_writes: bytes | None
    started_at_ms: float
    finished_at_ms: float
    events: list[Event] = field(default_factory=list)
    served_ids: list[str] = field(default_factory=list)
    served_run: int = 0
    request_outcome: RequestOutcome | None = None
    code_version: str | None = None
    """The version of the code that ran the attempt (``_registry.code_version``)."""
    events_from_row: bool = False
    """Whether the call's FunctionRunCreated and FunctionRunCompleted (this run's
    first attempt succeeded) are read from its row (``_events.call_created``,
    ``call_succeeded``) instead of being in ``events``: numbered before them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailure:
    """A failed attempt; ``final`` when no retry follows in this run."""

    key: CallKey
    run: int
    attempt: int
    run_attempts: int
    status: CallStatus
    outcome: str
    error: dict[str, Any]
    args: bytes | None
    started_at_ms: float | None
    finished_at_ms: float
    not_before_ms: float
    retry_delay_s: float | None
    events: list[Event] = field(default_factory=list)
    served_ids: list[str] = field(default_factory=list)
    served_run: int = 0
    request_outcome: RequestOutcome | None = None
    code_version: str | None = None
    """The version of the code that ran the attempt (``_registry.code_version``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningCall:
    """A call seen running in an executor, made visible to other processes."""

    key: CallKey
    run: int
    worker_id: str
    executor: int
    started_at_ms: float
