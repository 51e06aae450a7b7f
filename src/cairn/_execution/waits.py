"""Durable sleep and signal waits, and parking.

A sleep or a signal wait is recorded under a durable id (a position in its
caller's calls, as a child call has), so that a replay finds it: a timer that
fired is not slept again, a delivered signal is served again, a timeout raised
again. A wait longer than ``PARK_AFTER_S`` *parks*: ``Parked`` unwinds the stack
to the dispatched call this code runs in, which goes back to pending in the store
(due when the timer fires, or when its signal comes) and releases its executor.
When it is claimed again, it resumes by replay: its completed calls are served
from their checkpoints, and the code reaches the wait again, now over.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from cairn import _events, _serialization, errors
from cairn.store import NEVER_MS, CallKey, Park, Store, WaitRecord

from . import clock as _clock
from . import frames

#: a wait that ends sooner than this is waited in place; a longer one parks (a
#: resume costs a claim and the replay of the completed calls)
PARK_AFTER_S = 1.0
#: a caller parked on its children is woken when they end (by whoever commits
#: them); it also looks again after this long, in case a wake went missing
CHILDREN_RECHECK_MS = 300_000.0
# How often a signal wait waited in place looks for its signal.
_POLL_S = 0.01
MAX_SIGNAL_NAME = 200


class Parked(BaseException):
    """Raised by a wait that parks, caught where the dispatched call it runs in
    began. A BaseException, so that user code's ``except Exception`` cannot
    swallow it (the call would go on as if it had waited)."""

    def __init__(
        self,
        wait: WaitRecord | None,
        not_before_ms: float,
        groups: Sequence[str] = (),
    ) -> None:
        super().__init__(
            f"parked on {wait.kind} wait {wait.id}" if wait else "parked on children"
        )
        #: the sleep or signal wait it parks on (None: on its children)
        self.wait = wait
        self.not_before_ms = not_before_ms
        #: the groups of calls it waits for (a parked caller of Futures)
        self.groups = list(groups)
        #: in-process calls it unwound through, which wait with it
        self.unwound: list[str] = []


def unwound(error: BaseException, key: CallKey) -> None:
    """An in-process call was left by ``error``: if it parks, the call waits too."""
    if isinstance(error, Parked):
        error.unwound.append(key.id)


def park(parked: Parked, key: CallKey) -> None:
    """Park the dispatched call ``key`` on the wait that raised ``parked``."""
    runtime = frames.process()
    runtime.store.park_call(
        Park(
            request_id=key.request_id,
            call_id=key.id,
            wait_id=None if parked.wait is None else parked.wait.id,
            not_before_ms=parked.not_before_ms,
            released=parked.unwound,
            groups=parked.groups,
            now_ms=runtime.clock.now_ms(),
        )
    )


def wake_parents(groups: Iterable[str | None]) -> None:
    """Calls of these groups ended: wake the callers parked on them, if any."""
    found = sorted({group for group in groups if group is not None})
    if found:
        runtime = frames.process()
        runtime.store.wake_parents(found, runtime.clock.now_ms())


def check_signal_name(name: object) -> str:
    """A signal's name: a non-empty string of up to 200 characters."""
    if not isinstance(name, str) or not name or len(name) > MAX_SIGNAL_NAME:
        raise errors.SDKUsageError(
            f"a signal name must be a non-empty string of at most {MAX_SIGNAL_NAME} "
            f"characters, got {name!r}"
        )
    return name


def _begin(kind: str, name: str | None, duration_s: float | None) -> WaitRecord:
    """The wait at the running call's next position, recorded if it is new."""
    frame = frames.current()
    runtime = frames.process()
    metadata = [f"cairn.{kind}", name or ""]
    call_id, _seq = frame.next_child(metadata, [])
    now_ms = runtime.clock.now_ms()
    return runtime.store.begin_wait(
        call_id,
        frame.run.request_id,
        kind=kind,
        name=name,
        due_at_ms=None if duration_s is None else now_ms + duration_s * 1000.0,
        now_ms=now_ms,
    )


def _pause(seconds: float) -> None:
    """Wait in place; the waiting call's own deadline clock stops meanwhile."""
    frame = frames.current()
    frame.suspend()
    try:
        frames.process().clock.sleep(seconds)
    finally:
        frame.resume()


def sleep(seconds: float) -> None:
    """Sleep ``seconds``, durably: across crashes and restarts, and not again in a
    replay once the timer fired. A sleep over ``PARK_AFTER_S`` parks the request."""
    duration_s = _clock.non_negative_s(seconds, "sleep")
    wait = _begin("sleep", None, duration_s)
    if wait.status != "waiting":
        return
    runtime = frames.process()
    assert wait.due_at_ms is not None
    left_s = (wait.due_at_ms - runtime.clock.now_ms()) / 1000.0
    if left_s > PARK_AFTER_S:
        raise Parked(wait, wait.due_at_ms)
    if left_s > 0:
        _pause(left_s)
    runtime.store.finish_wait(wait.id, runtime.clock.now_ms())


def wait_for_signal(name: str, timeout_s: float | None = None) -> Any:
    """The value of the next signal ``name`` sent to this request.

    A signal sent before the wait is kept for it; each signal goes to one wait.

    Raises:
        TimeoutError: no such signal came within ``timeout_s`` seconds.
    """
    name = check_signal_name(name)
    duration_s = (
        None if timeout_s is None else _clock.non_negative_s(timeout_s, "timeout_s")
    )
    wait = _begin("signal", name, duration_s)
    runtime = frames.process()
    while True:
        now_ms = runtime.clock.now_ms()
        delivery = runtime.store.take_signal(wait.id, wait.request_id, name, now_ms)
        if delivery.status == "done":
            assert delivery.value is not None
            return decode(delivery.value, delivery.encoding or "json", name)
        if delivery.status == "timed_out":
            raise errors.TimeoutError(
                f"no signal {name!r} came within {duration_s:g}s"
                if duration_s is not None
                else f"no signal {name!r} came"
            )
        due = NEVER_MS if wait.due_at_ms is None else wait.due_at_ms
        if (due - now_ms) / 1000.0 > PARK_AFTER_S:
            raise Parked(wait, due)
        _pause(min(_POLL_S, max(0.0, (due - now_ms) / 1000.0)))


def send(store: Store, request_id: str, name: str, value: Any, now_ms: float) -> int:
    """Send the signal ``name`` with ``value`` to a request; its number.

    Raises:
        SDKUsageError: the name is not a signal name.
        RequestNotFound: there is no such request.
        RequestFinished: the request has finished.
    """
    data, encoding = encode(value)
    return store.send_signal(
        request_id, check_signal_name(name), data, encoding, now_ms
    )


def describe(wait: WaitRecord) -> str:
    """What a request waits for, in words: ``sleeping until …``, ``waiting:
    signal 'approval'`` (``… until …`` with a timeout)."""
    due = None if wait.due_at_ms is None else _events.iso(wait.due_at_ms)
    if wait.kind == "sleep":
        return f"sleeping until {due}"
    if wait.kind == "children":
        return "parked: waiting for the calls it started"
    until = "" if due is None else f" until {due}"
    return f"waiting: signal {wait.name!r}{until}"


def encode(value: Any) -> tuple[bytes, str]:
    """A signal's value as sent: JSON when it is JSON, else pickled."""
    try:
        return json.dumps(value).encode(), "json"
    except (TypeError, ValueError):
        return _serialization.dumps(value, "signal value"), "pickle"


def decode(data: bytes, encoding: str, name: str) -> Any:
    """A signal's value as the wait returns it."""
    if encoding == "pickle":
        return _serialization.loads(data, f"signal {name!r}")
    try:
        return json.loads(data)
    except ValueError as error:
        raise errors.DeserializationError(
            f"signal {name!r} is not JSON: {error}"
        ) from None
