"""Start, wait and batch: how started Futures become runnable rows, and how a caller
waits on them without starving the pool.

A caller that waits on all of its Futures claims their pending calls and runs them
itself (in growing batches for fast map items), so nested fan-out deeper than the
pool never deadlocks. A caller that waits for the first of several does not run a
sibling inline (a slow one would decide who finishes first): it only polls, and
tells the supervisor it waits, so that the pool grows for its children instead.

Futures are duck-typed here (``Waitable``): the module knows how to start and wait,
each Future kind knows how it is started, polled and claimed.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from cairn import _faults, _registry, errors
from cairn.store import CallKey, ClaimedCall

from . import arguments, failures, frames, journal, waits
from . import clock as _clock

_POLL_MIN_S = 0.0005
_POLL_MAX_S = 0.02
# Map items that run faster than this are claimed and committed in batches of up
# to BATCH_MAX (the transaction, not the work, is then the cost per item).
FAST_ITEM_S = 0.002
BATCH_MAX = 64


class RETURN_WHEN(enum.Enum):
    """When ``Future.wait`` returns."""

    FIRST_COMPLETED = 0
    FIRST_FAILURE = 1
    ALL_COMPLETED = 2


class Waitable(Protocol):
    """What the scheduler needs of a Future."""

    _started: bool
    _done: bool
    _call_id: str | None
    _exception: BaseException | None
    _start_delay_s: float

    def _inputs(self) -> list[Any]:
        """Futures this one needs started first (depth first, in order)."""

    def _start(self, parent: frames.Frame, not_before_ms: float) -> None:
        """Make this Future's calls runnable."""

    def _poll(self) -> bool:
        """Look once at the store; True (and finished) if the outcome is there."""

    def _claim(self, size: int) -> list[ClaimedCall]:
        """Up to ``size`` pending calls of this Future, claimed for this process."""

    def _finish(
        self, result: Any = None, exception: BaseException | None = None
    ) -> None:
        """Mark the Future done with ``result`` or ``exception``."""


# -- starting ---------------------------------------------------------------------------------
def start(future: Waitable) -> None:
    """Start a Future and, depth first, every Future it depends on.

    A Future that cannot start (its arguments cannot be serialized, say) fails with
    that error, which is raised here too.
    """
    parent = frames.current()
    for dependency in future._inputs():
        if not dependency._started:
            start(dependency)
    future._started = True
    not_before = (
        frames.process().clock.now_ms() + future._start_delay_s * 1000.0
        if future._start_delay_s
        else 0.0
    )
    try:
        future._start(parent, not_before)
    except errors.CairnError as error:
        future._finish(exception=error)
        raise


def enqueue(
    parent: frames.Frame,
    group_id: str,
    rows: Sequence[tuple[CallKey, bytes | None, float]],
    *,
    inputs_ran: bool = False,
) -> bool:
    """Write dispatched calls as runnable rows; True if every one is served from
    its checkpoint (none will run).

    A call checkpointed by an earlier run stays served, unless the arguments it was
    recorded with changed: then an adaptive replay runs it again and a strict one
    stops, naming it. ``inputs_ran``: a Future among the arguments runs in this run
    (its output may differ from the one the checkpoints were made with), so they
    run again too.
    """
    store = frames.process().store
    recorded = store.succeeded_args_in_group(group_id)
    changed = []
    for key, blob, _ in rows if recorded else ():
        if key.id in recorded:
            what = arguments.changed(recorded[key.id], blob or b"", key.function)
            if what is None:
                if inputs_ran:
                    changed.append(key.id)
                continue
            if parent.run.strict:
                raise failures.Diverged(
                    f"strict replay of request {parent.run.request_id!r}: "
                    f"{key.function!r} ({key.kind} #{key.seq} of "
                    f"{parent.key.function!r}) was recorded with other arguments: "
                    f"{what} changed"
                )
            changed.append(key.id)
    if changed:
        store.invalidate_checkpoints(changed)
    # Calls checkpointed by an earlier run are served, not run: say so in this run.
    parent.run.served.extend(i for i in recorded if i not in changed)
    # Two transactions for a map, so that a crash between them (the map_fanout
    # fault point) leaves a half-written fan-out that a restart must complete.
    half = (len(rows) + 1) // 2
    store.enqueue_calls(list(rows[:half]), parent.run.run)
    if rows[half:]:
        _faults.point("map_fanout")
        store.enqueue_calls(list(rows[half:]), parent.run.run)
    return all(key.id in recorded and key.id not in changed for key, _, _ in rows)


# -- claiming ---------------------------------------------------------------------------------
def claim_one(
    *, call_id: str | None = None, group_id: str | None = None
) -> list[ClaimedCall]:
    """Claim one runnable call by id, or of a group, under the functions' caps."""
    runtime = frames.process()
    claimed = runtime.store.claim_call(
        runtime.worker_id,
        runtime.executor,
        runtime.clock.now_ms(),
        call_id=call_id,
        group_id=group_id,
        caps=_registry.concurrency_caps(),
        scope=runtime.scope,
        limits=_registry.flow_limits(),
    )
    return [] if claimed is None else [claimed]


def claim_group(group_id: str, size: int) -> list[ClaimedCall]:
    """Claim up to ``size`` runnable items of a map group at once (uncapped functions)."""
    runtime = frames.process()
    return runtime.store.claim_group(
        runtime.worker_id,
        runtime.executor,
        runtime.clock.now_ms(),
        group_id,
        size,
        scope=runtime.scope,
    )


def _run_batch(batch: list[ClaimedCall]) -> float:
    run_batch = frames.process().run_batch
    if run_batch is None:
        raise errors.InternalError("this process cannot run claimed calls")
    return run_batch(batch)


def _run_batches(claim: Callable[[int], list[ClaimedCall]], batch_size: int) -> bool:
    """Claim and run batches until ``claim`` finds nothing; True if any ran.

    Items that prove fast are claimed, and their checkpoints committed, in growing
    batches; a slow item brings the batch back to one, so that slow items stay
    spread over executors.
    """
    ran = False
    while True:
        batch = claim(batch_size)
        if not batch:
            return ran
        ran = True
        fast = _run_batch(batch) / len(batch) < FAST_ITEM_S
        batch_size = min(batch_size * 2, BATCH_MAX) if fast else 1


def _claim_for(futures: Sequence[Waitable], size: int) -> list[ClaimedCall]:
    for future in futures:
        if future._started and not future._done:
            batch = future._claim(size)
            if batch:
                return batch
    return []


def run_group(claimed: ClaimedCall, keep_claiming: Callable[[], bool]) -> None:
    """Run a claimed call; if it is a fast map item, then the rest of its map that
    nobody holds yet.

    An executor that picked up one item goes on with the same map in growing
    batches, as the waiting caller does, instead of one claim per item, for as
    long as ``keep_claiming()`` (a draining worker stops taking work).
    """
    if _run_batch([claimed]) >= FAST_ITEM_S:
        return  # slow items stay one claim each, spread over the executors
    group_id = claimed.record.group_id
    spec = _registry.find(claimed.record.function)
    if claimed.record.kind != "map_item" or group_id is None or spec is None:
        return
    if _registry.is_flow_limited(spec):
        return  # capped or rate-limited items are claimed one by one, under limits
    _run_batches(lambda size: claim_group(group_id, size) if keep_claiming() else [], 2)


# -- waiting ----------------------------------------------------------------------------------
def check_timeout(timeout: object) -> float | None:
    """A wait's timeout in seconds (None: no limit), or SDKUsageError."""
    return None if timeout is None else _clock.non_negative_s(timeout, "timeout")


def satisfied(futures: Sequence[Waitable], mode: RETURN_WHEN) -> bool:
    """Whether ``mode`` is met by the Futures' current states."""
    done = [f for f in futures if f._done]
    if mode is RETURN_WHEN.ALL_COMPLETED or len(done) == len(futures):
        return len(done) == len(futures)
    if mode is RETURN_WHEN.FIRST_COMPLETED:
        return bool(done)
    return any(f._exception is not None for f in done)


def _time_out(futures: Sequence[Waitable]) -> list[int]:
    # Tensorlake's rule: a wait that runs out fails the Futures still pending.
    timed_out = []
    for position, future in enumerate(futures):
        if not future._done:
            future._finish(exception=errors.TimeoutError())
            timed_out.append(position)
    return timed_out


class _Wait:
    """One wait: its deadline, its polling backoff, and how it ended.

    The waiting call's own clock stops meanwhile (its children have theirs).
    """

    def __init__(
        self, futures: Sequence[Waitable], timeout: float | None, mode: RETURN_WHEN
    ) -> None:
        self.futures = futures
        self.mode = mode
        self.frame = frames.current()
        self.runtime = frames.process()
        self.clock = self.runtime.clock
        timeout_s = check_timeout(timeout)
        self.deadline = (
            None if timeout_s is None else self.clock.monotonic_s() + timeout_s
        )
        self.delay_s = _POLL_MIN_S
        self.timed_out: list[int] = []

    def __enter__(self) -> _Wait:
        self.frame.suspend()
        return self

    def __exit__(self, *_: object) -> None:
        self.runtime.board.set_waiting(False)
        self.frame.resume()

    def over(self) -> bool:
        """Look at the Futures once: is the wait satisfied, or out of time?"""
        for future in self.futures:
            if not future._done:
                future._poll()
        if satisfied(self.futures, self.mode):
            return True
        if self.deadline is not None and self.clock.monotonic_s() >= self.deadline:
            self.timed_out = _time_out(self.futures)
            return True
        return False

    def runs_pending(self) -> bool:
        """Whether this wait may run its Futures' pending calls itself: only when
        it needs all of them anyway (for FIRST_* a slow sibling run inline would
        decide who finishes first; a timeout could not stop it)."""
        return self.deadline is None and self.mode is RETURN_WHEN.ALL_COMPLETED

    def pause_s(self) -> float:
        """How long to sleep before looking again (backing off, within the deadline)."""
        pause = self.delay_s
        if self.deadline is not None:
            pause = min(pause, max(0.0, self.deadline - self.clock.monotonic_s()))
        self.delay_s = min(self.delay_s * 2, _POLL_MAX_S)
        return pause

    def split(self) -> list[bool]:
        """Which Futures are done, in input order."""
        return [future._done for future in self.futures]


def _wait_here(
    futures: Sequence[Waitable], timeout: float | None, mode: RETURN_WHEN
) -> _Wait:
    with _Wait(futures, timeout, mode) as wait_:
        idle_since = wait_.clock.monotonic_s()
        while not wait_.over():
            # Claim until nothing is left before looking again: counting a map
            # group costs O(items), a claim O(log items).
            if wait_.runs_pending() and _run_batches(
                lambda size: _claim_for(futures, size), 1
            ):
                wait_.delay_s = _POLL_MIN_S
                idle_since = wait_.clock.monotonic_s()
                continue
            if (
                wait_.runs_pending()
                and wait_.clock.monotonic_s() - idle_since > waits.PARK_AFTER_S
            ):
                _park(futures)
            # Told to the supervisor: it starts another executor for the work we
            # wait on rather than let this process hold a slot doing nothing.
            wait_.runtime.board.set_waiting(True)
            wait_.clock.sleep(wait_.pause_s())
            wait_.runtime.board.set_waiting(False)
    return wait_


def _park(futures: Sequence[Waitable]) -> None:
    """Nothing left to run here, and the calls waited on run elsewhere (or wait
    themselves): give up this process until they have all ended."""
    groups = [
        str(future._call_id)
        for future in futures
        if future._started and not future._done and future._call_id is not None
    ]
    if groups:
        now_ms = frames.process().clock.now_ms()
        raise waits.Parked(None, now_ms + waits.CHILDREN_RECHECK_MS, groups)


def wait(
    futures: Sequence[Waitable], timeout: float | None, mode: RETURN_WHEN
) -> list[bool]:
    """Block until ``mode`` is satisfied or ``timeout`` passes, running work if idle;
    return which Futures are done.

    A wait whose outcome depends on timing (FIRST_*, a timeout) is journaled: a
    replay returns the split the recorded run saw, so the code takes its path.
    """
    if timeout is None and mode is RETURN_WHEN.ALL_COMPLETED:
        return _wait_here(futures, None, mode).split()
    entry = journal.Entry(frames.current(), futures, mode, timeout)
    recorded = entry.recorded()
    if recorded is not None:
        done, timed_out = recorded
        _wait_here([futures[i] for i in done], None, RETURN_WHEN.ALL_COMPLETED)
        _time_out([futures[i] for i in timed_out])
        return [i in done or i in timed_out for i in range(len(futures))]
    ended = _wait_here(futures, timeout, mode)
    split = ended.split()
    entry.record(
        [i for i, done in enumerate(split) if done and i not in ended.timed_out],
        ended.timed_out,
    )
    return split


async def wait_async(
    futures: Sequence[Waitable], timeout: float | None, mode: RETURN_WHEN
) -> None:
    """``wait`` for event loops: polls without blocking the loop."""
    with _Wait(futures, timeout, mode) as wait_:
        while not wait_.over():
            wait_.runtime.board.set_waiting(True)
            await asyncio.sleep(wait_.pause_s())
            wait_.runtime.board.set_waiting(False)
