"""Schedules: start an application on a cron expression (UTC), from any worker.

Each tick starts exactly one request, even with several workers: the worker that
finds a tick due moves the schedule past it and creates its request in one
transaction, and only while the schedule still has that tick (``start_tick``).

Missed ticks (no worker ran, or the schedule was paused) are *coalesced*: when
a worker finds ticks overdue, it starts one request, for the latest tick due,
and the schedule goes on from the next tick in the future. A schedule resumed
after a pause starts from the next tick after the resume: ticks that passed
while paused are skipped.

``Schedules`` is the Python API (``cairn schedules`` and the HTTP routes use
it); ``Ticker`` is what serving workers run when they have nothing else to do.
"""

from __future__ import annotations

import datetime
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import croniter

from cairn import _calls, _registry, _store_cache, errors
from cairn.store import (
    CallKey,
    ClaimScope,
    NewRequest,
    ScheduleRecord,
    Store,
    Tick,
    default_url,
)

logger = logging.getLogger(__name__)

#: how often an idle serving worker looks for due ticks
TICK_EVERY_S = 0.5


def check_cron(cron: object) -> str:
    """A cron expression of five fields (minute hour day month weekday), or
    SDKUsageError naming what is wrong."""
    if not isinstance(cron, str) or len(cron.split()) != 5:
        raise errors.SDKUsageError(
            f"a schedule's cron expression has five fields (minute hour day month "
            f"weekday, e.g. '0 9 * * MON-FRI'), got {cron!r}"
        )
    try:
        croniter.croniter(cron)
    except (ValueError, KeyError) as error:
        raise errors.SDKUsageError(f"bad cron expression {cron!r}: {error}") from None
    return cron


def next_tick_ms(cron: str, after_ms: float) -> float:
    """The first tick of ``cron`` strictly after ``after_ms`` (UTC)."""
    start = datetime.datetime.fromtimestamp(after_ms / 1000.0, datetime.UTC)
    return float(croniter.croniter(cron, start).get_next(float)) * 1000.0


def last_tick_ms(cron: str, due_ms: float, now_ms: float) -> float:
    """The latest tick of ``cron`` in ``[due_ms, now_ms]`` (``due_ms`` if none later):
    the one tick a schedule that missed several starts."""
    start = datetime.datetime.fromtimestamp(now_ms / 1000.0, datetime.UTC)
    previous = float(croniter.croniter(cron, start).get_prev(float)) * 1000.0
    return max(due_ms, previous)


def encode_input(value: Any) -> bytes:
    """A schedule's input: the JSON value an invoke's body would be, the first
    argument of the application (None: no argument)."""
    try:
        args = [] if value is None else [value]
        return json.dumps({"args": args, "kwargs": {}}).encode()
    except (TypeError, ValueError) as error:
        raise errors.SerializationError(
            f"a schedule's input must be JSON: {error}"
        ) from None


def decode_input(data: bytes) -> Any:
    """The JSON value a schedule was given as its input."""
    args = json.loads(data).get("args", [])
    return args[0] if args else None


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A schedule, as ``Schedules`` lists it."""

    id: str
    application: str
    cron: str
    input: Any
    paused: bool
    next_at_ms: float
    last_at_ms: float | None
    last_request_id: str | None

    @classmethod
    def of(cls, record: ScheduleRecord) -> Schedule:
        return cls(
            id=record.id,
            application=record.application,
            cron=record.cron,
            input=decode_input(record.input),
            paused=record.paused,
            next_at_ms=record.next_at_ms,
            last_at_ms=record.last_at_ms,
            last_request_id=record.last_request_id,
        )


def add(store: Store, application: Any, cron: str, input: Any = None) -> Schedule:
    """Start ``application`` (a name or its function) on ``cron`` (five fields,
    UTC) with ``input`` (JSON: the application's first argument)."""
    name = application if isinstance(application, str) else application.name
    if not isinstance(name, str) or not name:
        raise errors.SDKUsageError(f"not an application: {application!r}")
    spec = _registry.find(name)
    if spec is not None and spec.application is None:
        raise errors.SDKUsageError(f"{name!r} is a function, not an application")
    now_ms = _calls.now_ms()
    record = ScheduleRecord(
        id="sch-" + secrets.token_hex(8),
        application=name,
        cron=check_cron(cron),
        input=encode_input(input),
        paused=False,
        next_at_ms=next_tick_ms(cron, now_ms),
        last_at_ms=None,
        last_request_id=None,
        created_at_ms=now_ms,
    )
    store.add_schedule(record)
    return Schedule.of(record)


def get(store: Store, schedule_id: str) -> Schedule:
    """One schedule (ScheduleNotFound if there is none)."""
    record = store.get_schedule(schedule_id)
    if record is None:
        raise errors.ScheduleNotFound(f"no schedule with id {schedule_id!r}")
    return Schedule.of(record)


def pause(store: Store, schedule_id: str) -> Schedule:
    """Stop starting requests (until ``resume``)."""
    store.pause_schedule(schedule_id, True, get(store, schedule_id).next_at_ms)
    return get(store, schedule_id)


def resume(store: Store, schedule_id: str) -> Schedule:
    """Start requests again, from the next tick on (those missed are skipped)."""
    next_ms = next_tick_ms(get(store, schedule_id).cron, _calls.now_ms())
    store.pause_schedule(schedule_id, False, next_ms)
    return get(store, schedule_id)


def delete(store: Store, schedule_id: str) -> None:
    """Forget a schedule; the requests it started stay."""
    if not store.delete_schedule(schedule_id):
        raise errors.ScheduleNotFound(f"no schedule with id {schedule_id!r}")


class Schedules:
    """The schedules of a store (default ``CAIRN_STORE`` or ``.cairn/cairn.db``).

    Workers that serve a schedule's application start its requests; a schedule
    of an application no worker serves waits for one.
    """

    def __init__(self, store: str | None = None) -> None:
        self.store_url = store or default_url()

    def _with(self, body: Callable[[Store], Any]) -> Any:
        with _store_cache.borrowed(self.store_url) as store:
            return body(store)

    def add(self, application: Any, cron: str, input: Any = None) -> Schedule:
        """Start ``application`` (a name or its function) on ``cron`` (five fields,
        UTC) with ``input`` (JSON: the application's first argument)."""
        made: Schedule = self._with(lambda store: add(store, application, cron, input))
        return made

    def list(self, application: str | None = None) -> list[Schedule]:
        """Every schedule (of ``application``), oldest first."""
        records = self._with(lambda store: store.list_schedules(application))
        return [Schedule.of(record) for record in records]

    def get(self, schedule_id: str) -> Schedule:
        """One schedule (ScheduleNotFound if there is none)."""
        found: Schedule = self._with(lambda store: get(store, schedule_id))
        return found

    def pause(self, schedule_id: str) -> Schedule:
        """Stop starting requests (until ``resume``)."""
        done: Schedule = self._with(lambda store: pause(store, schedule_id))
        return done

    def resume(self, schedule_id: str) -> Schedule:
        """Start requests again, from the next tick on (those missed are skipped)."""
        done: Schedule = self._with(lambda store: resume(store, schedule_id))
        return done

    def delete(self, schedule_id: str) -> None:
        """Forget a schedule; the requests it started stay."""
        self._with(lambda store: delete(store, schedule_id))


def request_of_tick(record: ScheduleRecord, now_ms: float) -> Tick:
    """The request a due schedule starts now, and where it goes next."""
    fired_ms = last_tick_ms(record.cron, record.next_at_ms, now_ms)
    request_id = f"{record.id}-{int(fired_ms // 1000)}"
    request = NewRequest(
        id=request_id,
        application=record.application,
        code_ref=None,
        input=record.input,
        headers={},
        created_at_ms=now_ms,
    )
    return Tick(
        schedule_id=record.id,
        due_at_ms=record.next_at_ms,
        fired_at_ms=fired_ms,
        next_at_ms=next_tick_ms(record.cron, now_ms),
        request=request,
        root=CallKey.application_call(request_id, record.application),
    )


class Ticker:
    """Starts the due ticks of the schedules a serving worker's scope serves."""

    def __init__(self, store: Store, scope: ClaimScope) -> None:
        self.store = store
        self.scope = scope
        self._next_look_s = 0.0

    def tick(self) -> int:
        """Start the requests of due ticks (at most every ``TICK_EVERY_S``); how
        many this worker started."""
        now_s = time.monotonic()
        if self.scope.owner is not None or now_s < self._next_look_s:
            return 0  # a local run's engine starts no schedule
        self._next_look_s = now_s + TICK_EVERY_S
        started = 0
        now_ms = _calls.now_ms()
        for record in self.store.due_schedules(now_ms):
            served = self.scope.functions
            if served is not None and record.application not in served:
                continue
            if self.store.start_tick(request_of_tick(record, now_ms)):
                started += 1
                logger.info(
                    "schedule %s started a request of %s",
                    record.id,
                    record.application,
                    extra={"action": "schedule_tick", "schedule_id": record.id},
                )
        return started
