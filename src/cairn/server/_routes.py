"""The route table: every route of the JSON API, once.

Starlette serves it (``_routing.routes``) and ``/openapi.json`` describes it
(``_openapi.document``); the dashboard's HTML routes are its own.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cairn import _registry
from cairn.types import RequestStatus

from . import (
    _api,
    _body,
    _models,
    _observability,
    _openapi,
    _schedules_api,
    _waits_api,
)
from ._routing import Answer, Operation, Param, error, ok

_REQ = "/applications/{application}/requests/{request_id}"

_APP = Param(name="application", where="path", description="application name")
_RID = Param(name="request_id", where="path", description="request id")
_PAGE = (
    Param(
        name="limit",
        where="query",
        description=f"page size (default {_api.DEFAULT_PAGE})",
        schema={"type": "integer", "minimum": 1, "maximum": _api.MAX_PAGE},
    ),
    Param(name="cursor", where="query", description="next_cursor of the last page"),
    Param(
        name="status",
        where="query",
        description="only requests in this status",
        schema={"type": "string", "enum": [s.value for s in RequestStatus]},
    ),
)
_NOT_FOUND = error("unknown namespace, application or request")
# Every route that changes something refuses pages of other sites (_guard).
_CROSS = error("sent by a page of another site or origin")
_STALLED = error("the body stopped arriving (10 s); the connection closes")
_NOT_JSON = error("the body is not sent as JSON (text/plain, a form)")
_SSE = {
    "text/event-stream": {
        "schema": {
            "description": (
                'one event: "id: <seq>" and "data: {"Kind": {...}}" (Tensorlake\'s '
                "externally tagged events), no event field; keep-alive comments"
            ),
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "data": {"type": "string", "contentMediaType": "application/json"},
                "event": {"type": "string"},
            },
            "required": ["data"],
        }
    }
}
_ANY_JSON: dict[str, Any] = {"application/json": {"schema": {}}}


async def openapi(request: Request) -> Response:
    """``GET /openapi.json``: this table, described."""
    state: _api.ServerState = request.app.state.cairn
    apps = sorted(spec.name for spec in _registry.applications())
    return JSONResponse(
        _openapi.document(OPERATIONS, apps, state.namespace, state.auth)
    )


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        method="get",
        path="/healthz",
        handler=_api.healthz,
        operation_id="healthz",
        summary="Liveness (never needs auth)",
        answers={200: ok(_models.Health), 503: error("store unusable")},
        namespaced=False,
        needs_auth=False,
    ),
    Operation(
        method="get",
        path="/openapi.json",
        handler=openapi,
        operation_id="openapi",
        summary="This document",
        answers={200: Answer(description="OpenAPI 3.1", content=_ANY_JSON)},
        namespaced=False,
    ),
    Operation(
        method="get",
        path="/applications",
        handler=_api.list_applications,
        operation_id="listApplications",
        summary="List the served applications",
        answers={200: ok(_models.ApplicationList), 404: _NOT_FOUND},
    ),
    Operation(
        method="get",
        path="/applications/{application}",
        handler=_api.get_application,
        operation_id="getApplication",
        summary="An application's manifest (Tensorlake's shape)",
        parameters=(_APP,),
        answers={200: ok(_models.Manifest), 404: _NOT_FOUND},
    ),
    Operation(
        method="post",
        path="/applications/{application}",
        handler=_api.invoke,
        operation_id="invoke",
        summary="Invoke an application: start a request",
        description=(
            "A JSON body is the first positional argument; a multipart/form-data "
            "body has one JSON part per argument, named 0, 1, ... (positional) or "
            "by parameter name. Accept: application/json answers the request id, "
            f"text/event-stream its events. Bodies over {_body.MAX_BODY_BYTES} "
            "bytes get 413."
        ),
        parameters=(
            _APP,
            Param(
                name="Idempotency-Key",
                where="header",
                description="becomes the request id; a second request with it gets 409",
                schema={
                    "type": "string",
                    "pattern": "^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,35}$",
                },
            ),
        ),
        body_content={
            **_ANY_JSON,
            "multipart/form-data": {
                "schema": {"type": "object", "additionalProperties": {}}
            },
        },
        answers={
            200: Answer(
                description="the request id, or its event stream",
                model=_models.InvokeResult,
                content=_SSE,
            ),
            400: error("bad JSON, bad multipart, invalid input or header"),
            403: _CROSS,
            404: _NOT_FOUND,
            406: error("Accept allows neither JSON nor an event stream"),
            408: _STALLED,
            409: error(
                "the Idempotency-Key was used for another invoke (the same invoke "
                "again gets 200 and the same request id)"
            ),
            413: error("the body is over 10 MiB"),
            415: _NOT_JSON,
        },
    ),
    Operation(
        method="get",
        path="/applications/{application}/requests",
        handler=_api.list_requests,
        operation_id="listRequests",
        summary="An application's requests, newest first",
        parameters=(_APP, *_PAGE),
        answers={
            200: ok(_models.RequestList),
            400: error("bad limit, cursor or status"),
            404: _NOT_FOUND,
        },
    ),
    Operation(
        method="get",
        path=_REQ,
        handler=_api.get_request,
        operation_id="getRequest",
        summary="A request: outcome, failure, function runs and attempts",
        parameters=(_APP, _RID),
        answers={200: ok(_models.RequestMetadata), 404: _NOT_FOUND},
    ),
    Operation(
        method="delete",
        path=_REQ,
        handler=_api.delete,
        operation_id="deleteRequest",
        summary="Delete a finished request and all it recorded",
        parameters=(_APP, _RID),
        answers={
            204: Answer(description="deleted"),
            403: _CROSS,
            404: _NOT_FOUND,
            409: error("the request has not finished"),
            501: error("this store cannot delete requests yet"),
        },
    ),
    Operation(
        method="get",
        path=f"{_REQ}/progress",
        handler=_api.progress,
        operation_id="streamProgress",
        summary="The request's events (Server-Sent Events)",
        parameters=(
            _APP,
            _RID,
            Param(
                name="Last-Event-ID",
                where="header",
                description="resume after this event (0: from the first event)",
                schema={"type": "string", "pattern": "^[0-9]{1,18}$"},
            ),
        ),
        answers={
            200: Answer(description="event stream", content=_SSE),
            400: error("bad Last-Event-ID"),
            404: _NOT_FOUND,
        },
    ),
    Operation(
        method="get",
        path=f"{_REQ}/output",
        handler=_api.output,
        operation_id="getOutput",
        summary="The application's output (JSON)",
        parameters=(_APP, _RID),
        answers={
            200: Answer(description="the output", content=_ANY_JSON),
            404: error("unknown request, or it failed: no output"),
            409: error("the request has not finished"),
        },
    ),
    Operation(
        method="head",
        path=f"{_REQ}/output",
        handler=None,
        operation_id="headOutput",
        summary="Whether the request has an output",
        parameters=(_APP, _RID),
        answers={
            200: Answer(description="it has one"),
            204: Answer(description="it has none (yet)"),
            404: Answer(description="unknown request"),
        },
    ),
    Operation(
        method="get",
        path=f"{_REQ}/output/{{call_id}}",
        handler=_api.call_output,
        operation_id="getCallOutput",
        summary="One function call's output (pickled)",
        parameters=(
            _APP,
            _RID,
            Param(name="call_id", where="path", description="function call id"),
        ),
        answers={
            200: Answer(
                description="the pickled output",
                content={
                    _api.PICKLE_TYPE: {"schema": {"type": "string", "format": "binary"}}
                },
            ),
            404: error("unknown request or call, or it has no output"),
        },
    ),
    Operation(
        method="post",
        path=f"{_REQ}/replay",
        handler=_api.replay,
        operation_id="replayRequest",
        summary="Replay a request with the served code",
        parameters=(_APP, _RID),
        body=_models.ReplayBody,
        answers={
            200: ok(_models.ReplayResult),
            400: error("bad body or unknown from_call"),
            403: _CROSS,
            404: _NOT_FOUND,
            408: _STALLED,
            409: error("still running, or its application is not served"),
            413: error("the body is too large"),
            415: _NOT_JSON,
        },
    ),
    Operation(
        method="post",
        path=f"{_REQ}/cancel",
        handler=_api.cancel,
        operation_id="cancelRequest",
        summary="Cancel a request (no-op once finished)",
        parameters=(_APP, _RID),
        answers={200: ok(_models.CancelResult), 403: _CROSS, 404: _NOT_FOUND},
    ),
    *_waits_api.operations(_REQ, (_APP, _RID)),
    *_schedules_api.operations(_APP),
    Operation(
        method="get",
        path="/requests",
        handler=_api.list_all_requests,
        operation_id="listAllRequests",
        summary="Requests of every application, newest first (Cairn)",
        parameters=_PAGE,
        answers={
            200: ok(_models.RequestList),
            400: error("bad limit, cursor or status"),
            404: _NOT_FOUND,
        },
    ),
    Operation(
        method="get",
        path="/requests/{request_id}",
        handler=_api.find_request,
        operation_id="findRequest",
        summary="A request of any application (Cairn)",
        parameters=(_RID,),
        answers={200: ok(_models.RequestMetadata), 404: _NOT_FOUND},
    ),
    *_observability.OPERATIONS,
)
