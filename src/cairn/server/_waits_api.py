"""Signals over HTTP: ``POST …/requests/{request_id}/signals/{name}`` sends the
JSON body (``null`` when empty) to the request's ``wait_for_signal(name)``.

``OPERATIONS`` joins the route table (``_routes``), which serves and describes it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from cairn import _calls, errors
from cairn._execution import waits
from cairn.store import Store

from . import _api, _body, _errors
from ._routing import Operation, Param, error, ok

# A signal's value is a decision or a small document, not a payload.
MAX_SIGNAL_BYTES = 1024 * 1024


class SignalResult(BaseModel):
    """A signal the request keeps until a wait for it takes it."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    signal: str = Field(description="the signal's name")
    seq: int = Field(description="the signal's number among the request's signals")


async def send_signal(request: Request) -> Response:
    """``POST …/requests/{request_id}/signals/{name}``: send a signal."""
    state = _api._state(request)
    record = await _api._record(
        state, _api._text(request, "application"), _api._text(request, "request_id")
    )
    name = waits.check_signal_name(_api._text(request, "name"))
    data = await _body.read(request)
    if len(data) > MAX_SIGNAL_BYTES:
        raise _errors.ApiError(
            413,
            "body_too_large",
            f"a signal's value is at most {MAX_SIGNAL_BYTES} bytes",
        )
    value: Any = None
    if data.strip():
        _body.require_json(request)
        value = _body.decode_json(data, "the signal's value")

    def send(store: Store) -> int:
        return waits.send(store, record.id, name, value, _calls.now_ms())

    try:
        seq = await state.pool.run(send)
    except errors.RequestFinished as error:
        raise _errors.conflict("request_finished", error.message) from None
    return _api.answer(SignalResult(request_id=record.id, signal=name, seq=seq))


def operations(
    request_path: str, parameters: tuple[Param, ...]
) -> tuple[Operation, ...]:
    """The routes under a request's path (``parameters``: the path's own)."""
    name = Param(
        name="name",
        where="path",
        description="the signal's name, as the request's wait_for_signal names it",
        schema={"type": "string", "minLength": 1, "maxLength": waits.MAX_SIGNAL_NAME},
    )
    return (
        Operation(
            method="post",
            path=f"{request_path}/signals/{{name}}",
            handler=send_signal,
            operation_id="signalRequest",
            summary="Send a signal to a request (kept until a wait takes it)",
            description=(
                "The JSON body (null when empty) is what the request's "
                "wait_for_signal(name) returns; a signal sent before the wait is "
                "kept for it, and each signal goes to one wait."
            ),
            parameters=(*parameters, name),
            body_content={"application/json": {"schema": {}}},
            answers={
                200: ok(SignalResult),
                400: error("bad signal name or body"),
                403: error("sent by a page of another site or origin"),
                404: error("unknown namespace, application or request"),
                408: error("the body stopped arriving (10 s); the connection closes"),
                409: error("the request has finished"),
                413: error("the value is too large"),
                415: error("the body is not sent as JSON"),
            },
        ),
    )
