"""Bearer-token auth: with an API key set, every route but ``/healthz`` needs it."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from . import _errors

OPEN_PATHS = frozenset({"/healthz"})


class BearerAuth:
    """ASGI middleware comparing ``Authorization: Bearer <key>`` in constant time."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        code, message = problem
        answer = _errors.response(
            401, code, message, {"WWW-Authenticate": 'Bearer realm="cairn"'}
        )
        await answer(scope, receive, send)

    def _problem(self, scope: Scope) -> tuple[str, str] | None:
        values = [v for k, v in scope["headers"] if k == b"authorization"]
        if not values:
            return (
                "unauthorized",
                "this server needs an API key: send 'Authorization: Bearer <key>'",
            )
        if len(values) > 1:
            return ("unauthorized", "send one Authorization header, not several")
        scheme, _, token = values[0].strip().partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            return ("unauthorized", "the Authorization header must be 'Bearer <key>'")
        # compare_digest takes the same time wherever the first difference is.
        if not hmac.compare_digest(token.strip(), self._key):
            return ("unauthorized", "the API key is not valid")
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
