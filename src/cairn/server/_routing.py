"""The route table's entries, and the Starlette routes made from them.

Each ``Operation`` is one method of one path: its handler, and what
``/openapi.json`` says of it (parameters, body, answers). The same table makes
the Starlette routes and the document, so that a route cannot exist without its
description, nor be described without existing.

One route per path: each method answered by its handler, OPTIONS with ``Allow``.
Starlette tries routes in order, so with one route per method (GET here, POST
there) an OPTIONS, or a method no route of the path takes, was answered with the
first route's methods alone: ``Allow: GET, HEAD`` on the invoke route. A
Starlette ``HTTPEndpoint`` per path knows all of them: OPTIONS answers 204 with
``Allow``, any other method 405 with the same ``Allow``; HEAD is answered by the
GET handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from . import _models

Handler = Callable[[Request], Awaitable[Response]]
NAMESPACE_PREFIX = "/v1/namespaces/{namespace}"


#: An SSE answer's content: Tensorlake's externally tagged events, one a message.
SSE_EVENTS: dict[str, Any] = {
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


@dataclass(frozen=True, kw_only=True)
class Param:
    """A path, query or header parameter."""

    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True, kw_only=True)
class Answer:
    """One status code's answer: a JSON body of ``model``, or other ``content``."""

    description: str
    model: type[BaseModel] | None = None
    content: Mapping[str, Any] | None = None


def ok(model: type[BaseModel]) -> Answer:
    """A 200 with a JSON body of ``model``."""
    return Answer(description="OK", model=model)


def error(description: str) -> Answer:
    """An error answer (``{"error": {"code", "message"}}``)."""
    return Answer(description=description, model=_models.Error)


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One method of one path."""

    method: Literal["get", "post", "delete", "head"]
    path: str
    handler: Handler | None
    """None for HEAD: the path's GET handler answers it."""
    operation_id: str
    summary: str
    answers: Mapping[int, Answer]
    description: str | None = None
    parameters: Sequence[Param] = ()
    body: type[BaseModel] | None = None
    """A JSON body of this model (optional: an empty body is all defaults)."""
    body_content: Mapping[str, Any] | None = None
    """Other bodies, by media type (optional)."""
    namespaced: bool = True
    """Also served under ``/v1/namespaces/{namespace}``."""
    needs_auth: bool = True


class _Resource(HTTPEndpoint):
    async def options(self, request: Request) -> Response:
        """The methods of this path."""
        return Response(
            status_code=204, headers={"Allow": ", ".join(self._allowed_methods)}
        )


def resource(
    path: str,
    *,
    get: Handler | None = None,
    post: Handler | None = None,
    delete: Handler | None = None,
) -> Route:
    """The route of ``path``, answering each method given with its handler."""
    handlers = {"get": get, "post": post, "delete": delete}
    methods = {
        name: staticmethod(handler)
        for name, handler in handlers.items()
        if handler is not None
    }
    return Route(path, type("Resource", (_Resource,), methods))


def _resources(operations: Sequence[Operation]) -> list[BaseRoute]:
    by_path: dict[str, dict[str, Handler]] = {}
    for operation in operations:
        methods = by_path.setdefault(operation.path, {})
        if operation.handler is not None:
            methods[operation.method] = operation.handler
    return [
        resource(
            path,
            get=methods.get("get"),
            post=methods.get("post"),
            delete=methods.get("delete"),
        )
        for path, methods in by_path.items()
    ]


def routes(operations: Sequence[Operation]) -> list[BaseRoute]:
    """The Starlette routes of a route table, in its order; the namespaced ones
    twice: at the root and under ``/v1/namespaces/{namespace}``."""
    root = [op for op in operations if not op.namespaced]
    namespaced = [op for op in operations if op.namespaced]
    return [
        *_resources(root),
        *_resources(namespaced),
        Mount(NAMESPACE_PREFIX, routes=_resources(namespaced)),
    ]
