"""Signals over HTTP: ``POST …/requests/{request_id}/signals/{name}`` sends the
JSON body (``null`` when empty) to the request's ``wait_for_signal(name)``.

Each route here is also described for ``/openapi.json`` (``operations``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from cairn import _calls, errors
from cairn._execution import waits
from cairn.store import Store

from . import _api, _body, _errors, _schemas
from ._routing import resource

# A signal's value is a decision or a small document, not a payload.
MAX_SIGNAL_BYTES = 1024 * 1024


def routes(request_path: str) -> list[BaseRoute]:
    """The routes under a request's path."""
    return [resource(f"{request_path}/signals/{{name}}", post=send_signal)]


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
    return JSONResponse({"request_id": record.id, "signal": name, "seq": seq})


SCHEMAS: dict[str, Any] = {
    "SignalResult": {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "signal": {"type": "string"},
            "seq": {"type": "integer"},
        },
        "required": ["request_id", "signal", "seq"],
    },
}


def operations(
    request_path: str, parameters: list[dict[str, Any]], errors_of: Any
) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The OpenAPI operations of the routes here (``errors_of(text)``: an error
    answer's description)."""
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": waits.MAX_SIGNAL_NAME,
        },
        "description": "the signal's name, as the request's wait_for_signal names it",
    }
    return [
        (
            "post",
            f"{request_path}/signals/{{name}}",
            "signalRequest",
            {
                "summary": "Send a signal to a request (kept until a wait takes it)",
                "parameters": [*parameters, name],
                "requestBody": {
                    "required": False,
                    "content": _schemas.json_content({}),
                },
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": _schemas.json_content(_schemas.ref("SignalResult")),
                    },
                    "400": errors_of("bad signal name or body"),
                    "403": errors_of("sent by a page of another site or origin"),
                    "404": errors_of("unknown namespace, application or request"),
                    "408": errors_of("the body stopped arriving"),
                    "409": errors_of("the request has finished"),
                    "413": errors_of("the value is too large"),
                    "415": errors_of("the body is not sent as JSON"),
                },
            },
        )
    ]
