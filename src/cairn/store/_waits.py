"""Durable waits in the store: sleeps and signal waits recorded under their durable
ids, signals kept until a wait takes one, and parked calls.

A call that waits longer than a moment *parks*: the dispatched call it runs in goes
back to pending, due when its timer fires (or never, for a signal wait without a
timeout), and gives up its executor. A signal sent to the request makes the calls
parked on a wait for that name due at once. Both take the request's row first (a
lock on PostgreSQL; SQLite's one writer does it anyway), so that a signal sent
while its wait parks is never missed.

``WaitOps`` is the store's ``Waits`` role, over the named queries of
``sql/<dialect>_waits.sql``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cairn import errors
from cairn.types import RequestStatus

from ._dialect import Tx
from ._sqlbase import SqlBase

#: the not-before time of a call parked on a wait with no deadline: never due by
#: time, only by a signal (year 33658)
NEVER_MS = 1e15

WAITING, DONE, TIMED_OUT = "waiting", "done", "timed_out"


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitRecord:
    """A sleep or a signal wait of a request."""

    id: str
    request_id: str
    call_id: str | None
    """The dispatched call parked on it (None until it parks)."""
    kind: str
    """``sleep`` or ``signal``."""
    name: str | None
    """The signal's name (a signal wait)."""
    due_at_ms: float | None
    """When the sleep ends or the signal wait times out (None: never)."""
    status: str
    """``waiting``, ``done`` or ``timed_out``."""
    created_at_ms: float
    finished_at_ms: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """What a signal wait found: a value, a timeout, or nothing yet."""

    status: str
    """``done`` (``value`` holds the signal), ``timed_out`` or ``waiting``."""
    value: bytes | None = None
    encoding: str | None = None
    """``json`` or ``pickle``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalRecord:
    """A signal sent to a request."""

    seq: int
    name: str
    encoding: str
    wait_id: str | None
    """The wait that took it (None: kept for a wait to come)."""
    created_at_ms: float
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Park:
    """A dispatched call that gives up its executor until a wait ends."""

    request_id: str
    call_id: str
    wait_id: str | None
    """The sleep or signal wait it parks on (None: on its children)."""
    not_before_ms: float
    """When it is due again (``NEVER_MS``: only when its signal comes, or its
    children end)."""
    released: Sequence[str] = ()
    """In-process calls it was running, which wait with it."""
    groups: Sequence[str] = ()
    """The groups of calls (a Future's) it waits for, every call of each to end."""
    now_ms: float = 0.0


class Waits(Protocol):
    """The store's operations on waits and signals."""

    def begin_wait(
        self,
        wait_id: str,
        request_id: str,
        *,
        kind: str,
        name: str | None,
        due_at_ms: float | None,
        now_ms: float,
    ) -> WaitRecord:
        """Record a wait unless it is recorded; the wait as stored."""

    def finish_wait(self, wait_id: str, now_ms: float) -> None:
        """A sleep's timer fired."""

    def take_signal(
        self, wait_id: str, request_id: str, name: str, now_ms: float
    ) -> Delivery:
        """Deliver to a signal wait the oldest signal of its name nobody took, or
        record that its deadline passed; a wait that ended says how again."""

    def park_call(self, park: Park) -> None:
        """Park a running dispatched call on a wait (due at once if its signal
        is already there)."""

    def send_signal(
        self,
        request_id: str,
        name: str,
        value: bytes,
        encoding: str,
        now_ms: float,
    ) -> int:
        """Keep a signal for the request and wake the calls parked on it; its number.

        Raises:
            RequestNotFound: there is no such request.
            RequestFinished: the request has finished.
        """

    def list_waits(self, request_id: str) -> list[WaitRecord]:
        """The request's waits that have not ended, oldest first."""

    def list_signals(self, request_id: str) -> list[SignalRecord]:
        """Every signal sent to the request, in order."""

    def parked_on_wait(self, call_id: str) -> bool:
        """Whether the call has parked on a wait (a claim of it resumes it)."""

    def wake_parents(self, groups: Sequence[str], now_ms: float) -> list[str]:
        """Make due the callers parked on these groups whose awaited groups have
        all ended (called after calls of them end); their ids."""


def _wait(row: Any) -> WaitRecord:
    return WaitRecord(
        id=row[0],
        request_id=row[1],
        call_id=row[2],
        kind=row[3],
        name=row[4],
        due_at_ms=row[5],
        status=row[6],
        created_at_ms=row[7],
        finished_at_ms=row[8],
    )


class WaitOps(SqlBase):
    """``Waits`` of the SQL store."""

    def begin_wait(
        self,
        wait_id: str,
        request_id: str,
        *,
        kind: str,
        name: str | None,
        due_at_ms: float | None,
        now_ms: float,
    ) -> WaitRecord:
        """Record a wait unless it is recorded; the wait as stored."""
        found = self._dialect.read(
            lambda tx: tx.execute("get_wait", {"id": wait_id}).fetchone()
        )
        if found is not None:
            return _wait(found)

        def body(tx: Tx) -> Any:
            tx.execute(
                "insert_wait",
                {
                    "id": wait_id,
                    "request_id": request_id,
                    "kind": kind,
                    "name": name,
                    "due_at_ms": due_at_ms,
                    "now_ms": now_ms,
                },
            )
            return tx.execute("get_wait", {"id": wait_id}).fetchone()

        return _wait(self._dialect.write(body))

    def finish_wait(self, wait_id: str, now_ms: float) -> None:
        """A sleep's timer fired."""
        self._dialect.write(
            lambda tx: tx.execute(
                "finish_wait", {"id": wait_id, "status": DONE, "now_ms": now_ms}
            )
        )

    def take_signal(
        self, wait_id: str, request_id: str, name: str, now_ms: float
    ) -> Delivery:
        """Deliver the oldest signal of the wait's name, or time the wait out."""

        def body(tx: Tx) -> Delivery:
            tx.execute("lock_request", {"request_id": request_id})
            row = tx.execute("get_wait", {"id": wait_id}).fetchone()
            if row is None:
                raise errors.InternalError(f"no wait {wait_id!r} was recorded")
            wait = _wait(row)
            if wait.status == DONE:
                value, encoding = tx.execute(
                    "delivered_signal", {"wait_id": wait_id}
                ).fetchone()
                return Delivery(status=DONE, value=bytes(value), encoding=encoding)
            if wait.status == TIMED_OUT:
                return Delivery(status=TIMED_OUT)
            signal = tx.execute(
                "waiting_signal", {"request_id": request_id, "name": name}
            ).fetchone()
            if signal is not None:
                seq, value, encoding = signal
                tx.execute(
                    "take_signal",
                    {"wait_id": wait_id, "request_id": request_id, "seq": seq},
                )
                self._end_wait(tx, wait_id, DONE, now_ms)
                return Delivery(status=DONE, value=bytes(value), encoding=encoding)
            if wait.due_at_ms is not None and wait.due_at_ms <= now_ms:
                self._end_wait(tx, wait_id, TIMED_OUT, now_ms)
                return Delivery(status=TIMED_OUT)
            return Delivery(status=WAITING)

        return self._dialect.write(body)

    def _end_wait(self, tx: Tx, wait_id: str, status: str, now: float) -> None:
        tx.execute("finish_wait", {"id": wait_id, "status": status, "now_ms": now})

    def park_call(self, park: Park) -> None:
        """Park a running dispatched call on a wait."""

        def body(tx: Tx) -> None:
            tx.execute("lock_request", {"request_id": park.request_id})
            not_before_ms = park.not_before_ms
            if park.groups and self._park_on_children(tx, park):
                not_before_ms = 1.0  # they ended meanwhile: due at once
            row = None
            if park.wait_id is not None:
                tx.execute("attach_wait", {"id": park.wait_id, "call_id": park.call_id})
                row = tx.execute("get_wait", {"id": park.wait_id}).fetchone()
            # A signal that came while the call ran up to its wait: due at once.
            if row is not None and row[3] == "signal":
                found = tx.execute(
                    "waiting_signal",
                    {"request_id": park.request_id, "name": row[4]},
                ).fetchone()
                if found is not None:
                    not_before_ms = 1.0  # due at once (0 is a fresh call)
            if park.released:
                tx.execute("release_unwound", {"ids": list(park.released)})
            tx.execute(
                "park_call",
                {"call_id": park.call_id, "not_before_ms": not_before_ms},
            )

        self._dialect.write(body)

    def _park_on_children(self, tx: Tx, park: Park) -> bool:
        """Record what a parked caller waits for; True if it all ended already.

        A call of a group that ends commits under its request's row (locked here
        too): either its commit came first, and this sees it ended, or it comes
        after this, and the wake that follows it sees this wait."""
        for group in park.groups:
            tx.execute(
                "insert_children_wait",
                {
                    "id": f"{park.call_id}:{group}",
                    "request_id": park.request_id,
                    "call_id": park.call_id,
                    "name": group,
                    "now_ms": park.now_ms,
                },
            )
        unfinished = tx.execute(
            "unfinished_in_groups", {"groups": list(park.groups)}
        ).fetchone()
        return unfinished is None

    def wake_parents(self, groups: Sequence[str], now_ms: float) -> list[str]:
        """Make due the callers parked on these groups whose groups all ended."""
        params = {"groups": list(groups), "now_ms": now_ms}
        waiting = self._dialect.read(
            lambda tx: tx.execute("parents_waiting_on", params).fetchone()
        )
        if waiting is None:
            return []

        def body(tx: Tx) -> list[str]:
            rows = tx.execute("wake_parents", params).fetchall()
            woken = [str(row[0]) for row in rows]
            if woken:
                tx.execute(
                    "end_children_waits",
                    {"ids": list(woken), "now_ms": now_ms},
                )
            return woken

        return self._dialect.write(body)

    def send_signal(
        self,
        request_id: str,
        name: str,
        value: bytes,
        encoding: str,
        now_ms: float,
    ) -> int:
        """Keep a signal for the request and wake the calls parked on it."""

        def body(tx: Tx) -> int:
            row = tx.execute("lock_request", {"request_id": request_id}).fetchone()
            if row is None:
                raise errors.RequestNotFound(f"no request with id {request_id!r}")
            status = RequestStatus(row[1])
            if status.finished:
                raise errors.RequestFinished(
                    f"request {request_id!r} has {status}: it waits for no signal "
                    f"any more (signal {name!r} not sent)"
                )
            seq = int(
                tx.execute("next_signal_seq", {"request_id": request_id}).fetchone()[0]
            )
            params = {"request_id": request_id, "name": name, "now_ms": now_ms}
            tx.execute(
                "insert_signal",
                {**params, "seq": seq, "value": value, "encoding": encoding},
            )
            tx.execute("wake_waiters", params)
            return seq

        return self._dialect.write(body)

    def list_waits(self, request_id: str) -> list[WaitRecord]:
        """The request's waits that have not ended, oldest first."""
        rows = self._dialect.read(
            lambda tx: tx.execute("list_waits", {"request_id": request_id}).fetchall()
        )
        return [_wait(row) for row in rows]

    def list_signals(self, request_id: str) -> list[SignalRecord]:
        """Every signal sent to the request, in order."""
        rows = self._dialect.read(
            lambda tx: tx.execute("list_signals", {"request_id": request_id}).fetchall()
        )
        return [
            SignalRecord(
                seq=int(row[0]),
                name=row[1],
                encoding=row[2],
                wait_id=row[3],
                created_at_ms=row[4],
                size=int(row[5]),
            )
            for row in rows
        ]

    def parked_on_wait(self, call_id: str) -> bool:
        """Whether the call has parked on a wait."""
        row = self._dialect.read(
            lambda tx: tx.execute("parked_on", {"call_id": call_id}).fetchone()
        )
        return row is not None
