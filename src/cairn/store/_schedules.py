"""Schedules in the store: an application started on a cron expression.

A schedule keeps its next tick (``next_at_ms``). A worker that finds it due
moves it on and creates the tick's request in one transaction, and only while
the tick is still the one it read: of several workers, one creates it.
``ScheduleOps`` is the store's ``Schedules`` role, over the named queries of
``sql/<dialect>_schedules.sql``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ._dialect import Tx
from ._records import CallKey, NewRequest
from ._requests import insert_request
from ._sqlbase import SqlBase


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRecord:
    """An application started on a cron expression."""

    id: str
    application: str
    cron: str
    input: bytes
    """The requests' input, as invoke stores it (``{"args": [...], "kwargs": {}}``)."""
    paused: bool
    next_at_ms: float
    """The next tick (a paused schedule's tick when it was paused)."""
    last_at_ms: float | None
    """The last tick that started a request."""
    last_request_id: str | None
    created_at_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """A due tick a worker starts: the request, and where the schedule goes next."""

    schedule_id: str
    due_at_ms: float
    """The tick as read (it starts only if the schedule still has it)."""
    fired_at_ms: float
    """The tick the request is for (the latest one due, after downtime)."""
    next_at_ms: float
    request: NewRequest
    root: CallKey


class Schedules(Protocol):
    """The store's operations on schedules."""

    def add_schedule(self, schedule: ScheduleRecord) -> None:
        """Record a schedule."""

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """One schedule, or None."""

    def list_schedules(self, application: str | None = None) -> list[ScheduleRecord]:
        """Every schedule (of one application), oldest first."""

    def pause_schedule(self, schedule_id: str, paused: bool, next_at_ms: float) -> bool:
        """Pause or resume a schedule (resumed: from ``next_at_ms``); False if
        there is none."""

    def delete_schedule(self, schedule_id: str) -> bool:
        """Forget a schedule (its requests stay); False if there was none."""

    def due_schedules(self, now_ms: float, limit: int = 100) -> list[ScheduleRecord]:
        """Schedules not paused whose next tick is at or before ``now_ms``."""

    def start_tick(self, tick: Tick) -> bool:
        """Move the schedule past its tick and create the tick's request, in one
        transaction, if the schedule still has that tick; False otherwise."""


def _schedule(row: Any) -> ScheduleRecord:
    return ScheduleRecord(
        id=row[0],
        application=row[1],
        cron=row[2],
        input=bytes(row[3]),
        paused=bool(row[4]),
        next_at_ms=row[5],
        last_at_ms=row[6],
        last_request_id=row[7],
        created_at_ms=row[8],
    )


class ScheduleOps(SqlBase):
    """``Schedules`` of the SQL store."""

    def add_schedule(self, schedule: ScheduleRecord) -> None:
        """Record a schedule."""
        params = {
            "id": schedule.id,
            "application": schedule.application,
            "cron": schedule.cron,
            "input": schedule.input,
            "paused": int(schedule.paused),
            "next_at_ms": schedule.next_at_ms,
            "created_at_ms": schedule.created_at_ms,
        }
        self._dialect.write(lambda tx: tx.execute("insert_schedule", params))

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """One schedule, or None."""
        row = self._dialect.read(
            lambda tx: tx.execute("get_schedule", {"id": schedule_id}).fetchone()
        )
        return None if row is None else _schedule(row)

    def list_schedules(self, application: str | None = None) -> list[ScheduleRecord]:
        """Every schedule (of one application), oldest first."""
        rows = self._dialect.read(
            lambda tx: tx.execute(
                "list_schedules", {"application": application}
            ).fetchall()
        )
        return [_schedule(row) for row in rows]

    def pause_schedule(self, schedule_id: str, paused: bool, next_at_ms: float) -> bool:
        """Pause or resume a schedule."""
        params = {"id": schedule_id, "paused": int(paused), "next_at_ms": next_at_ms}
        changed = self._dialect.write(
            lambda tx: tx.execute("pause_schedule", params).rowcount
        )
        return bool(changed)

    def delete_schedule(self, schedule_id: str) -> bool:
        """Forget a schedule (its requests stay)."""
        deleted = self._dialect.write(
            lambda tx: tx.execute("delete_schedule", {"id": schedule_id}).rowcount
        )
        return bool(deleted)

    def due_schedules(self, now_ms: float, limit: int = 100) -> list[ScheduleRecord]:
        """Schedules not paused whose next tick has come."""
        rows = self._dialect.read(
            lambda tx: tx.execute(
                "due_schedules", {"now_ms": now_ms, "limit": limit}
            ).fetchall()
        )
        return [_schedule(row) for row in rows]

    def start_tick(self, tick: Tick) -> bool:
        """Move the schedule past its tick and create its request, atomically."""
        params = {
            "id": tick.schedule_id,
            "due_at_ms": tick.due_at_ms,
            "next_at_ms": tick.next_at_ms,
            "fired_at_ms": tick.fired_at_ms,
            "request_id": tick.request.id,
        }

        def body(tx: Tx) -> bool:
            if not tx.execute("advance_schedule", params).rowcount:
                return False
            insert_request(tx, tick.request, tick.root, tick.request.input)
            return True

        return self._dialect.write(body)
