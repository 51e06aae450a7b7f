"""One route per path: each method answered by its handler, OPTIONS with ``Allow``.

Starlette tries routes in order, so with one route per method (GET here, POST
there) an OPTIONS, or a method no route of the path takes, was answered with the
first route's methods alone: ``Allow: GET, HEAD`` on the invoke route. A
Starlette ``HTTPEndpoint`` per path knows all of them: OPTIONS answers 204 with
``Allow``, any other method 405 with the same ``Allow``; HEAD is answered by the
GET handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


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
