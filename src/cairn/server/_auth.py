"""Bearer-token auth: with an API key set, every route but ``/healthz`` needs it.

The dashboard's pages and their scripts authenticate with the session cookie its
login form sets instead (``_dashboard._session``): a browser cannot add a header
to a page load or an event stream, and the key must not go in a URL. A request
the cookie alone authenticates must come from the dashboard's own origin when
its method is unsafe (a cross-site form cannot post in the user's name). A
browser that asks for a dashboard page without a session is sent to the login
form; everything else gets the API's 401.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import quote

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from . import _dashboard, _errors

OPEN_PATHS = frozenset({"/healthz"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BearerAuth:
    """ASGI middleware comparing ``Authorization: Bearer <key>`` in constant time."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if scope["type"] != "http" or path in OPEN_PATHS or _dashboard.is_open(path):
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        if self._session(scope):
            if scope["method"] in _SAFE_METHODS or _dashboard.same_origin(
                scope["headers"], scope.get("scheme", "http")
            ):
                await self.app(scope, receive, send)
                return
            refused = _errors.response(
                403,
                "forbidden",
                "a request authenticated by the dashboard's cookie must come "
                "from the dashboard's own pages",
            )
            await refused(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD") and _dashboard.is_page(path):
            target = path + (
                "?" + scope["query_string"].decode("latin-1")
                if scope.get("query_string")
                else ""
            )
            login = f"{_dashboard.PREFIX}/login?next={quote(target, safe='')}"
            await RedirectResponse(login, status_code=303)(scope, receive, send)
            return
        code, message = problem
        answer = _errors.response(
            401, code, message, {"WWW-Authenticate": 'Bearer realm="cairn"'}
        )
        await answer(scope, receive, send)

    def _session(self, scope: Scope) -> bool:
        cookie = _dashboard.cookie_value(scope["headers"])
        return cookie is not None and _dashboard.valid(self._key, cookie)

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


def unprotected(host: str, api_key: str | None, allow_no_auth: bool) -> bool:
    """Whether serving ``host`` would let other machines run requests unasked."""
    return api_key is None and not is_loopback(host) and not allow_no_auth


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
