"""``/openapi.json``: every route, its parameters, bodies and answers (OpenAPI 3.1)."""

from __future__ import annotations

from typing import Any

import cairn
from cairn.types import RequestStatus

from . import _api, _body, _schemas, _waits_api

_PREFIX = "/v1/namespaces/{namespace}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": _schemas.json_content(_schemas.ref("Error")),
    }


def _param(name: str, where: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": text,
    }


def _operations(apps: list[str]) -> list[tuple[str, str, str, dict[str, Any]]]:
    app_schema: dict[str, Any] = {"type": "string"}
    if apps:
        app_schema["enum"] = apps
    app = _param("application", "path", app_schema, "application name")
    rid = _param("request_id", "path", {"type": "string"}, "request id")
    page = [
        _param(
            "limit",
            "query",
            {"type": "integer", "minimum": 1, "maximum": _api.MAX_PAGE},
            f"page size (default {_api.DEFAULT_PAGE})",
        ),
        _param("cursor", "query", {"type": "string"}, "next_cursor of the last page"),
        _param(
            "status",
            "query",
            {"type": "string", "enum": [s.value for s in RequestStatus]},
            "only requests in this status",
        ),
    ]
    not_found = _error("unknown namespace, application or request")
    # Every route that changes something refuses pages of other sites (_guard).
    cross = _error("sent by a page of another site or origin")
    stalled = _error("the body stopped arriving (10 s); the connection closes")
    not_json = _error("the body is not sent as JSON (text/plain, a form)")
    req = "/applications/{application}/requests/{request_id}"
    return [
        (
            "get",
            "/applications",
            "listApplications",
            {
                "summary": "List the served applications",
                "responses": {"200": _ok("ApplicationList"), "404": not_found},
            },
        ),
        (
            "get",
            "/applications/{application}",
            "getApplication",
            {
                "summary": "An application's manifest (Tensorlake's shape)",
                "parameters": [app],
                "responses": {"200": _ok("Manifest"), "404": not_found},
            },
        ),
        (
            "post",
            "/applications/{application}",
            "invoke",
            {
                "summary": "Invoke an application: start a request",
                "description": (
                    "A JSON body is the first positional argument; a "
                    "multipart/form-data body has one JSON part per argument, named "
                    "0, 1, ... (positional) or by parameter name. Accept: "
                    "application/json answers the request id, text/event-stream "
                    f"its events. Bodies over {_body.MAX_BODY_BYTES} bytes get 413."
                ),
                "parameters": [
                    app,
                    _param(
                        "Idempotency-Key",
                        "header",
                        {
                            "type": "string",
                            "pattern": "^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,35}$",
                        },
                        "becomes the request id; a second request with it gets 409",
                    ),
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {"schema": {}},
                        "multipart/form-data": {
                            "schema": {"type": "object", "additionalProperties": {}}
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": "the request id, or its event stream",
                        "content": {
                            **_schemas.json_content(_schemas.ref("InvokeResult")),
                            **_schemas.SSE,
                        },
                    },
                    "400": _error("bad JSON, bad multipart, invalid input or header"),
                    "403": cross,
                    "404": not_found,
                    "406": _error("Accept allows neither JSON nor an event stream"),
                    "408": stalled,
                    "409": _error(
                        "the Idempotency-Key was used for another invoke (the same "
                        "invoke again gets 200 and the same request id)"
                    ),
                    "413": _error("the body is over 10 MiB"),
                    "415": not_json,
                },
            },
        ),
        (
            "get",
            "/applications/{application}/requests",
            "listRequests",
            {
                "summary": "An application's requests, newest first",
                "parameters": [app, *page],
                "responses": {
                    "200": _ok("RequestList"),
                    "400": _error("bad limit, cursor or status"),
                    "404": not_found,
                },
            },
        ),
        (
            "get",
            req,
            "getRequest",
            {
                "summary": "A request: outcome, failure, function runs and attempts",
                "parameters": [app, rid],
                "responses": {"200": _ok("RequestMetadata"), "404": not_found},
            },
        ),
        (
            "delete",
            req,
            "deleteRequest",
            {
                "summary": "Delete a finished request and all it recorded",
                "parameters": [app, rid],
                "responses": {
                    "204": {"description": "deleted"},
                    "403": cross,
                    "404": not_found,
                    "409": _error("the request has not finished"),
                    "501": _error("this store cannot delete requests yet"),
                },
            },
        ),
        (
            "get",
            f"{req}/progress",
            "streamProgress",
            {
                "summary": "The request's events (Server-Sent Events)",
                "parameters": [
                    app,
                    rid,
                    _param(
                        "Last-Event-ID",
                        "header",
                        {"type": "string", "pattern": "^[0-9]{1,18}$"},
                        "resume after this event (0: from the first event)",
                    ),
                ],
                "responses": {
                    "200": {"description": "event stream", "content": _schemas.SSE},
                    "400": _error("bad Last-Event-ID"),
                    "404": not_found,
                },
            },
        ),
        (
            "get",
            f"{req}/output",
            "getOutput",
            {
                "summary": "The application's output (JSON)",
                "parameters": [app, rid],
                "responses": {
                    "200": {
                        "description": "the output",
                        "content": _schemas.json_content({}),
                    },
                    "404": _error("unknown request, or it failed: no output"),
                    "409": _error("the request has not finished"),
                },
            },
        ),
        (
            "head",
            f"{req}/output",
            "headOutput",
            {
                "summary": "Whether the request has an output",
                "parameters": [app, rid],
                "responses": {
                    "200": {"description": "it has one"},
                    "204": {"description": "it has none (yet)"},
                    "404": {"description": "unknown request"},
                },
            },
        ),
        (
            "get",
            f"{req}/output/{{call_id}}",
            "getCallOutput",
            {
                "summary": "One function call's output (pickled)",
                "parameters": [
                    app,
                    rid,
                    _param("call_id", "path", {"type": "string"}, "function call id"),
                ],
                "responses": {
                    "200": {
                        "description": "the pickled output",
                        "content": {
                            _api.PICKLE_TYPE: {
                                "schema": {"type": "string", "format": "binary"}
                            }
                        },
                    },
                    "404": _error("unknown request or call, or it has no output"),
                },
            },
        ),
        (
            "post",
            f"{req}/replay",
            "replayRequest",
            {
                "summary": "Replay a request with the served code",
                "parameters": [app, rid],
                "requestBody": {
                    "required": False,
                    "content": _schemas.json_content(_schemas.ref("ReplayBody")),
                },
                "responses": {
                    "200": _ok("ReplayResult"),
                    "400": _error("bad body or unknown from_call"),
                    "403": cross,
                    "404": not_found,
                    "408": stalled,
                    "409": _error("still running, or its application is not served"),
                    "413": _error("the body is too large"),
                    "415": not_json,
                },
            },
        ),
        (
            "post",
            f"{req}/cancel",
            "cancelRequest",
            {
                "summary": "Cancel a request (no-op once finished)",
                "parameters": [app, rid],
                "responses": {
                    "200": _ok("CancelResult"),
                    "403": cross,
                    "404": not_found,
                },
            },
        ),
        (
            "get",
            "/requests",
            "listAllRequests",
            {
                "summary": "Requests of every application, newest first (Cairn)",
                "parameters": page,
                "responses": {
                    "200": _ok("RequestList"),
                    "400": _error("bad limit, cursor or status"),
                    "404": not_found,
                },
            },
        ),
        (
            "get",
            "/requests/{request_id}",
            "findRequest",
            {
                "summary": "A request of any application (Cairn)",
                "parameters": [rid],
                "responses": {"200": _ok("RequestMetadata"), "404": not_found},
            },
        ),
        *_waits_api.operations(req, [app, rid], _error),
    ]


def _ok(schema: str) -> dict[str, Any]:
    return {"description": "OK", "content": _schemas.json_content(_schemas.ref(schema))}


def document(apps: list[str], namespace: str, auth: bool) -> dict[str, Any]:
    """The OpenAPI document of this server."""
    paths: dict[str, dict[str, Any]] = {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness (never needs auth)",
                "security": [],
                "responses": {"200": _ok("Health"), "503": _error("store unusable")},
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": _schemas.json_content({}),
                    }
                },
            }
        },
    }
    ns = _param(
        "namespace", "path", {"type": "string", "enum": [namespace]}, "namespace"
    )
    unauthorized = _error("missing or wrong API key")
    unavailable = _error("the store cannot be used right now")
    for method, path, operation_id, spec in _operations(apps):
        for prefix in ("", _PREFIX):
            operation = {
                **spec,
                "operationId": operation_id + ("InNamespace" if prefix else ""),
            }
            operation["parameters"] = ([ns] if prefix else []) + list(
                spec.get("parameters", [])
            )
            operation["responses"] = {**spec["responses"], "503": unavailable}
            if auth:
                operation["responses"]["401"] = unauthorized
            paths.setdefault(prefix + path, {})[method] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Cairn",
            "version": cairn.__version__,
            "description": (
                "Durable execution for Python: Tensorlake's v1 HTTP API. Routes "
                f"exist under /v1/namespaces/{{namespace}} and, for namespace "
                f"{namespace!r}, without the prefix. Errors are "
                '{"error": {"code", "message"}}.'
            ),
        },
        "paths": paths,
        "components": {"schemas": {**_schemas.SCHEMAS, **_waits_api.SCHEMAS}},
    }
    if auth:
        document["components"]["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"}
        }
        document["security"] = [{"bearer": []}]
    return document
