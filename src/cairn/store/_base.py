"""The store seam: one narrow interface of domain operations, no SQL outside it.

``Store`` is its roles together: ``Requests`` (what the API and the CLI ask),
``Journal`` (what running code checkpoints and replays), ``Queue`` (dispatched
calls and their executors), ``Admin`` (the store and its workers) and ``Reads``
(the dashboard's). A part of Cairn that needs one role can ask for just it.
Every backend passes the one contract suite in ``tests/contract``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from cairn.types import CallStatus, RequestStatus

from ._browse import Reads
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
from ._schedules import Schedules
from ._waits import Waits

SCHEMA_VERSION = 9


class Requests(Protocol):
    """Requests: submitted, listed, replayed, ended, deleted (what the API and the
    CLI ask of the store)."""

    def create_request(self, request: NewRequest, root: CallKey, args: bytes) -> None:
        """Insert a request and its pending application call (``RequestExists`` if taken)."""

    def create_requests(
        self, batch: Sequence[tuple[NewRequest, CallKey, bytes]]
    ) -> list[bool]:
        """Insert requests and their application calls in one transaction (one
        commit for many submissions); False where the id was taken, left as it was."""

    def get_request(self, request_id: str) -> RequestRecord | None:
        """The request, or None."""

    def list_requests(
        self,
        *,
        application: str | None = None,
        status: RequestStatus | None = None,
        limit: int = 50,
        before_ms: float | None = None,
    ) -> list[RequestRecord]:
        """Newest first; ``before_ms`` pages to older ones."""

    def count_requests(self) -> dict[RequestStatus, int]:
        """How many requests are in each status."""

    def start_replay(
        self,
        request_id: str,
        *,
        from_call: str | None,
        strict: bool,
        now_ms: float,
        owner: str | None = None,
    ) -> int:
        """Re-queue the application call under a new run number and return it.

        ``owner``: the engine that will run it alone (a local replay), or None for
        any serving worker."""

    def delete_request(self, request_id: str) -> bool:
        """Delete a request and everything recorded for it; False if there was none."""

    def finish_request(
        self, request_id: str, outcome: RequestOutcome, now_ms: float
    ) -> None:
        """Record how a request ended, outside any call commit."""

    def list_calls(self, request_id: str) -> list[CallRecord]:
        """Every call of a request in start order."""

    def failed_calls(self, request_id: str) -> list[CallRecord]:
        """Calls of the request's latest run that failed for good (failed or timed
        out), in the order they ended."""

    def list_attempts(self, request_id: str) -> list[AttemptRecord]:
        """Every attempt of every call of a request."""

    def list_events(
        self, request_id: str, after_seq: int = 0, limit: int = 1000
    ) -> list[EventRecord]:
        """Events after ``after_seq`` in order."""

    def last_event_seq(self, request_id: str) -> int:
        """The number of the request's latest event (0: none, or no request)."""

    def adopt_request(self, request_id: str, owner: str) -> None:
        """Make an unfinished request nobody owns ``owner``'s."""


class Journal(Protocol):
    """A request's journal as its running code writes and replays it: checkpoints,
    failed attempts, events, progress and request state."""

    def get_call(self, call_id: str) -> CallRecord | None:
        """One call, without blobs."""

    def get_call_output(self, call_id: str) -> bytes | None:
        """The committed output of a call."""

    def get_call_args(self, call_id: str) -> bytes | None:
        """The recorded arguments of a call."""

    def get_state_writes(self, call_id: str) -> bytes | None:
        """The request-state writes a committed call made."""

    def list_children(self, request_id: str, parent_id: str) -> list[CallRecord]:
        """The recorded children of a call of ``request_id`` in start order."""

    def list_recorded_children(
        self, request_id: str, parent_id: str, from_seq: int, limit: int
    ) -> list[RecordedChild]:
        """Up to ``limit`` in-process children at positions ``from_seq`` on, in order,
        with the outputs of those that succeeded (one query for many replayed calls).
        """

    def commit_success(
        self, success: CallSuccess, *, read_back: bool = False
    ) -> RequestRecord | None:
        """Commit a checkpoint, its events and, for the last call, the request's
        end. ``read_back``: return the request's record if this commit ended it,
        read in its transaction (on PostgreSQL, with no round trip of its own)."""

    def commit_successes(self, successes: Sequence[CallSuccess]) -> None:
        """Commit several checkpoints in one transaction (all or none)."""

    def record_failure(self, failure: CallFailure) -> None:
        """Record a failed attempt, and the call's final failure if it is final."""

    def append_events(self, request_id: str, events: list[Event]) -> None:
        """Append events with the next sequence numbers."""

    def set_progress(
        self, request_id: str, progress: dict[str, object], event: Event
    ) -> None:
        """Record the latest progress of a request and append its event."""

    def state_get(self, request_id: str, key: str) -> bytes | None:
        """A request-state value."""

    def state_set(self, request_id: str, key: str, value: bytes) -> None:
        """Set a request-state value."""

    def iter_served(self, request_id: str, run: int) -> Iterator[str]:
        """Ids of calls served from checkpoints in a run."""


class Queue(Protocol):
    """Dispatched calls waiting for executors: enqueued, claimed, started, released,
    and the map groups they belong to."""

    def enqueue_calls(
        self, calls: list[tuple[CallKey, bytes | None, float]], run: int
    ) -> None:
        """Make dispatched calls runnable (key, args, not_before_ms).

        A call that already succeeded, or is pending or running in this run, is
        left as it is; one left failed by an earlier run starts afresh.
        """

    def create_claimed(
        self,
        request: NewRequest,
        root: CallKey,
        args: bytes,
        worker_id: str,
        executor: int,
        now_ms: float,
    ) -> ClaimedCall:
        """Create a request with its application call claimed by ``executor`` of
        ``worker_id`` (the request's owner), in one transaction: its run starts.

        Raises:
            RequestExists: the id is taken (nothing was written).
        """

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
        """Take one runnable dispatched call (optionally of one group, or one id).

        Calls of a function whose running calls reached its cap in ``caps`` (its
        ``max_concurrency``, counted across every worker) are left for later, as
        are those ``limits`` hold back: of a function out of rate-limit tokens, or
        of a concurrency key at its cap. Any call (no group, no id) is one of
        ``scope``: by default, of requests nobody owns, of any function; the due
        call of the highest-priority request is taken first. The claim of an
        application call starts a run of its request: marks the request running
        and appends its ``RequestStarted`` event.
        """

    def claim_group(
        self,
        worker_id: str,
        executor: int,
        now_ms: float,
        group_id: str,
        limit: int,
        scope: ClaimScope | None = None,
    ) -> list[ClaimedCall]:
        """Take up to ``limit`` runnable calls of one map group, in item order.

        For functions without ``max_concurrency`` (callers check): a batch of fast
        items costs one transaction instead of one each.
        """

    def start_capped(
        self, call: RunningCall, cap: int | None, limits: FlowLimits | None = None
    ) -> bool:
        """Mark an in-process call running unless its function is at ``cap`` or
        ``limits`` hold it back (taking its rate-limit token when it starts)."""

    def mark_running(self, calls: list[RunningCall]) -> None:
        """Make in-process calls visible as running (never over a final status)."""

    def runnable_exists(self, now_ms: float, scope: ClaimScope | None = None) -> bool:
        """Whether any dispatched call of ``scope`` is waiting for an executor."""

    def unfinished_dispatched(self, request_id: str) -> int:
        """How many dispatched calls of a request are pending or running."""

    def flow_waits(
        self, request_id: str, now_ms: float
    ) -> list[tuple[str, str, str | None]]:
        """The request's pending dispatched calls that flow control holds back:
        (function, ``"rate"``, None) out of rate-limit tokens, (function, ``"key"``,
        key) with calls of that concurrency key running."""

    def group_counts(self, group_id: str) -> dict[CallStatus, int]:
        """How many calls of a map group are in each status."""

    def group_outputs(self, group_id: str) -> Iterator[tuple[int, bytes | None]]:
        """Outputs of a group's calls in item order (None where not succeeded)."""

    def succeeded_args_in_group(self, group_id: str) -> dict[str, bytes | None]:
        """The group's calls that have a checkpoint: id -> the arguments it was
        recorded with."""

    def invalidate_checkpoints(self, call_ids: list[str]) -> None:
        """Make checkpointed calls run again when next enqueued (their arguments
        changed): they become ``stale``, as a replay ``from_call`` makes them."""

    def release_calls(self, worker_id: str, executor: int | None) -> list[CallRecord]:
        """Put the running calls of a dead executor (or worker) back to pending."""

    def executors_of_cancelled(self, worker_id: str) -> list[int]:
        """Executors of a worker holding running calls of cancelled requests."""


class Admin(Protocol):
    """The store itself and the workers that serve it."""

    url: str

    @property
    def schema_before(self) -> int:
        """The schema version the store had when opened (0: opening created it)."""

    def close(self) -> None:
        """Release connections."""

    def reopen(self) -> Store:
        """A new store on the same URL, for use in another process or thread."""

    def check(self) -> None:
        """Raise StoreError if the store is unusable (StoreReplaced if it is gone)."""

    def change_token(self) -> int:
        """A number that changes when another connection commits (cheap to poll)."""

    def heartbeat(self, worker_id: str, host: str, pid: int, now_ms: float) -> None:
        """Record that a worker is alive."""

    def serve_functions(self, worker_id: str, versions: Mapping[str, str]) -> None:
        """Record the functions a serving worker has loaded, with their code
        versions (replacing what it served before)."""

    def serving_workers(self, function: str, now_ms: float) -> dict[str, str]:
        """Live serving workers that have loaded ``function``: id -> code version."""

    def unserved_functions(self, request_id: str, now_ms: float) -> list[str]:
        """Functions of the request's pending dispatched calls that no live serving
        worker has loaded (what a request nobody owns waits for)."""

    def release_dead_workers(self, now_ms: float) -> int:
        """Make the calls of dead workers runnable again; return how many."""


class Store(Requests, Journal, Queue, Admin, Reads, Waits, Schedules, Protocol):
    """Durable state of requests, calls, attempts, events and request state: the
    store's roles in one interface (and ``Reads``: the dashboard's reads of a
    request a page at a time; ``Waits``: sleeps, signals and parked calls;
    ``Schedules``)."""
