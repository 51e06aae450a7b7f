"""Schedules in the store: an application started on a cron expression.

A schedule keeps its next tick (``next_at_ms``). A worker that finds it due
moves it on and creates the tick's request in one transaction, and only while
the tick is still the one it read: of several workers, one creates it.

``Scheduling`` is the one implementation for both SQL stores, over the named
queries of ``sql/<dialect>_schedules.sql`` and the stores' own request inserts;
a store supplies the hooks of ``_waits.Waiting``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from . import _sql, _sqlbase
from ._records import CallKey, NewRequest
from ._waits import Connection

T = TypeVar("T")


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


class Scheduling:
    """``Schedules`` for both SQL stores."""

    _browse_dialect: str

    def _waits_write(self, body: Callable[[Connection], T]) -> T:
        raise NotImplementedError

    def _waits_read(self, body: Callable[[Connection], T]) -> T:
        raise NotImplementedError

    def _schedule_sql(
        self, conn: Connection, name: str, params: Mapping[str, Any]
    ) -> Any:
        queries = _sql.queries(f"{self._browse_dialect}_schedules")
        query = queries[name].replace("{columns}", queries["schedule_columns"])
        return conn.execute(query, params)

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
        self._waits_write(
            lambda conn: self._schedule_sql(conn, "insert_schedule", params)
        )

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """One schedule, or None."""
        row = self._waits_read(
            lambda conn: self._schedule_sql(
                conn, "get_schedule", {"id": schedule_id}
            ).fetchone()
        )
        return None if row is None else _schedule(row)

    def list_schedules(self, application: str | None = None) -> list[ScheduleRecord]:
        """Every schedule (of one application), oldest first."""
        rows = self._waits_read(
            lambda conn: self._schedule_sql(
                conn, "list_schedules", {"application": application}
            ).fetchall()
        )
        return [_schedule(row) for row in rows]

    def pause_schedule(self, schedule_id: str, paused: bool, next_at_ms: float) -> bool:
        """Pause or resume a schedule."""
        params = {"id": schedule_id, "paused": int(paused), "next_at_ms": next_at_ms}
        cursor = self._waits_write(
            lambda conn: self._schedule_sql(conn, "pause_schedule", params)
        )
        return bool(cursor.rowcount)

    def delete_schedule(self, schedule_id: str) -> bool:
        """Forget a schedule (its requests stay)."""
        cursor = self._waits_write(
            lambda conn: self._schedule_sql(
                conn, "delete_schedule", {"id": schedule_id}
            )
        )
        return bool(cursor.rowcount)

    def due_schedules(self, now_ms: float, limit: int = 100) -> list[ScheduleRecord]:
        """Schedules not paused whose next tick has come."""
        rows = self._waits_read(
            lambda conn: self._schedule_sql(
                conn, "due_schedules", {"now_ms": now_ms, "limit": limit}
            ).fetchall()
        )
        return [_schedule(row) for row in rows]

    def start_tick(self, tick: Tick) -> bool:
        """Move the schedule past its tick and create its request, atomically."""
        store_queries = _sql.queries(self._browse_dialect)

        def body(conn: Connection) -> bool:
            moved = self._schedule_sql(
                conn,
                "advance_schedule",
                {
                    "id": tick.schedule_id,
                    "due_at_ms": tick.due_at_ms,
                    "next_at_ms": tick.next_at_ms,
                    "fired_at_ms": tick.fired_at_ms,
                    "request_id": tick.request.id,
                },
            )
            if not moved.rowcount:
                return False

            def execute(name: str, params: Mapping[str, Any]) -> Any:
                return conn.execute(store_queries[name], params)

            payload = tick.request.input
            _sqlbase.insert_requests(execute, [(tick.request, tick.root, payload)])
            return True

        return self._waits_write(body)
