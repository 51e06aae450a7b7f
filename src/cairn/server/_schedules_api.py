"""Schedules over HTTP (Cairn): add one to an application, list, pause, resume and
delete them. ``OPERATIONS`` joins the route table (``_routes``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from cairn import _schedules
from cairn.store import Store

from . import _api, _body, _errors
from ._routing import Answer, Operation, Param, error, ok

# A schedule's body is a cron expression and a small input.
MAX_SCHEDULE_BODY_BYTES = 64 * 1024


class ScheduleBody(BaseModel):
    """A schedule to add."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(
        min_length=1,
        max_length=200,
        description="five fields, UTC: minute hour day-of-month month day-of-week",
    )
    input: Any = Field(
        default=None, description="the application's first argument (JSON)"
    )


class ScheduleInfo(BaseModel):
    """A schedule: each tick starts one request of its application."""

    model_config = ConfigDict(extra="forbid")

    id: str
    application: str
    cron: str
    input: Any = None
    paused: bool
    next_at: float = Field(description="the next tick, epoch milliseconds")
    last_at: float | None = Field(description="the last tick that started a request")
    last_request_id: str | None


class ScheduleList(BaseModel):
    """Every schedule, oldest first."""

    model_config = ConfigDict(extra="forbid")

    schedules: list[ScheduleInfo]


def _info(schedule: _schedules.Schedule) -> ScheduleInfo:
    return ScheduleInfo(
        id=schedule.id,
        application=schedule.application,
        cron=schedule.cron,
        input=schedule.input,
        paused=schedule.paused,
        next_at=schedule.next_at_ms,
        last_at=schedule.last_at_ms,
        last_request_id=schedule.last_request_id,
    )


async def add(request: Request) -> Response:
    """``POST /applications/{application}/schedules``."""
    state = _api._state(request)
    spec = _api._spec(_api._text(request, "application"))
    data = await _body.read(request)
    if len(data) > MAX_SCHEDULE_BODY_BYTES:
        raise _errors.ApiError(413, "body_too_large", "the schedule body is too large")
    _body.require_json(request)
    body = _body.model(data, ScheduleBody)
    made = await state.pool.run(
        lambda store: _schedules.add(store, spec.name, body.cron, body.input)
    )
    return _api.answer(_info(made))


async def list_all(request: Request) -> Response:
    """``GET /schedules``."""
    found = await _api._state(request).pool.run(lambda store: store.list_schedules())
    schedules = [_info(_schedules.Schedule.of(record)) for record in found]
    return _api.answer(ScheduleList(schedules=schedules))


async def _change(
    request: Request,
    change: Callable[[Store, str], _schedules.Schedule],
) -> Response:
    schedule_id = _api._text(request, "schedule_id")
    done = await _api._state(request).pool.run(lambda store: change(store, schedule_id))
    return _api.answer(_info(done))


async def pause(request: Request) -> Response:
    """``POST /schedules/{schedule_id}/pause``."""
    return await _change(request, _schedules.pause)


async def resume(request: Request) -> Response:
    """``POST /schedules/{schedule_id}/resume``."""
    return await _change(request, _schedules.resume)


async def delete(request: Request) -> Response:
    """``DELETE /schedules/{schedule_id}``."""
    schedule_id = _api._text(request, "schedule_id")
    await _api._state(request).pool.run(
        lambda store: _schedules.delete(store, schedule_id)
    )
    return Response(status_code=204)


def operations(application: Param) -> tuple[Operation, ...]:
    """The schedule routes (``application``: the path parameter of the app)."""
    sid = Param(name="schedule_id", where="path", description="schedule id")
    missing = error("unknown namespace or schedule")
    cross = error("sent by a page of another site or origin")
    return (
        Operation(
            method="post",
            path="/applications/{application}/schedules",
            handler=add,
            operation_id="addSchedule",
            summary="Start an application on a cron expression (Cairn)",
            parameters=(application,),
            body=ScheduleBody,
            answers={
                200: ok(ScheduleInfo),
                400: error("bad cron expression, input or body"),
                403: cross,
                404: error("unknown namespace or application"),
                408: error("the body stopped arriving (10 s); the connection closes"),
                413: error("the body is too large"),
                415: error("the body is not sent as JSON"),
            },
        ),
        Operation(
            method="get",
            path="/schedules",
            handler=list_all,
            operation_id="listSchedules",
            summary="Every schedule, oldest first (Cairn)",
            answers={200: ok(ScheduleList), 404: error("unknown namespace")},
        ),
        Operation(
            method="post",
            path="/schedules/{schedule_id}/pause",
            handler=pause,
            operation_id="pauseSchedule",
            summary="Stop a schedule starting requests (Cairn)",
            parameters=(sid,),
            answers={200: ok(ScheduleInfo), 403: cross, 404: missing},
        ),
        Operation(
            method="post",
            path="/schedules/{schedule_id}/resume",
            handler=resume,
            operation_id="resumeSchedule",
            summary="Start a paused schedule again from its next tick (Cairn)",
            parameters=(sid,),
            answers={200: ok(ScheduleInfo), 403: cross, 404: missing},
        ),
        Operation(
            method="delete",
            path="/schedules/{schedule_id}",
            handler=delete,
            operation_id="deleteSchedule",
            summary="Delete a schedule; its requests stay (Cairn)",
            parameters=(sid,),
            answers={204: Answer(description="deleted"), 403: cross, 404: missing},
        ),
    )
