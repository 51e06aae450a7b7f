"""What a browser may not make the server do: DNS rebinding and cross-site requests.

A server without a key on loopback trusts whoever can reach it, and a web page in
the user's browser can reach it too. Two defences, before authentication:

- ``Host`` must name this server (``allowed_hosts``: loopback names, the bound
  address, names the operator adds). A page on ``evil.example`` whose name was
  re-pointed at 127.0.0.1 sends ``Host: evil.example`` and gets 400: without it
  the browser would treat the API as that page's own origin and let it read
  everything.
- A request that changes something (POST, PUT, PATCH, DELETE) must not come from
  another site or another origin: ``Sec-Fetch-Site: cross-site|same-site`` or an
  ``Origin`` other than this server's gets 403. Ports count (a page on another
  localhost port is same-site, not same-origin). Clients other than browsers send
  neither header and pass.

The invoke and replay bodies also refuse content types a cross-site form can send
without asking (``text/plain``, form encoding): ``_body.require_json``.

It also refuses (400) a URL holding a NUL character: no id or name can hold one,
and the stores differ on it (PostgreSQL refuses NUL in text, SQLite looks it up).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from . import _errors

#: The names every server answers to: loopback can only be reached from here.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
#: In ``allowed_hosts``: any ``Host`` at all.
ANY_HOST = "*"
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_OTHER_SITE = frozenset({"cross-site", "same-site"})


def host_name(value: str) -> str:
    """A ``Host`` header (or a bound address) without its port, normalized."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8900
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # name:8900 (more colons: a bare IPv6 address)
        value = value.partition(":")[0]
    return value.rstrip(".")


def is_wildcard(host: str) -> bool:
    """Whether a bind address means every interface (``0.0.0.0``, ``::``)."""
    try:
        return ipaddress.ip_address(host_name(host)).is_unspecified
    except ValueError:
        return host == ""


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The ``Host`` names a server bound to ``bound`` answers to.

    Loopback names, the bound address and ``extra``; any host when bound to every
    interface with no names given (no list could name every way to reach it; such a
    server needs a key, which a rebinding page does not have).
    """
    names = [host_name(name) for name in extra if name.strip()]
    if is_wildcard(bound):
        return tuple(names) + LOOPBACK_HOSTS if names else (ANY_HOST,)
    return (*LOOPBACK_HOSTS, host_name(bound), *names)


class Guard:
    """ASGI middleware checking ``Host``, and the origin of unsafe requests."""

    def __init__(self, app: ASGIApp, allowed_hosts: Iterable[str]) -> None:
        self.app = app
        names = {host_name(name) for name in allowed_hosts}
        self._any = ANY_HOST in names
        self._exact = frozenset(n for n in names if not n.startswith("*."))
        self._suffixes = tuple(n[1:] for n in names if n.startswith("*."))

    def _allowed(self, host: str) -> bool:
        name = host_name(host)
        return (
            self._any
            or name in self._exact
            or (name.endswith(self._suffixes) and bool(self._suffixes))
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get(b"host")
        # HTTP/1.1 requires Host (h11 refuses a request without it); an HTTP/1.0
        # client without one is no browser.
        if host is not None and not self._allowed(host):
            refused = _errors.response(
                400,
                "bad_host",
                f"this server does not answer to Host {host[:100]!r} (add the name "
                "with --allowed-hosts or CAIRN_ALLOWED_HOSTS)",
            )
            await refused(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope.get("query_string", b""):
            refused = _errors.response(
                400, "bad_url", "the URL holds a NUL character (%00), which no id has"
            )
            await refused(scope, receive, send)
            return
        if scope["method"] in _UNSAFE_METHODS:
            problem = _other_origin(headers, host)
            if problem is not None:
                refused = _errors.response(403, "cross_origin", problem)
                await refused(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _other_origin(headers: dict[bytes, str], host: str | None) -> str | None:
    """Why a browser's request comes from another site or origin, or None."""
    site = headers.get(b"sec-fetch-site", "").strip().lower()
    if site in _OTHER_SITE:
        return (
            f"refused a {site} request: pages of other sites and origins cannot "
            "act on this server"
        )
    origin = headers.get(b"origin")
    if origin is None:
        return None
    _, _, netloc = origin.strip().lower().partition("://")
    if host is None or netloc != host.strip().lower():
        return (
            f"refused a request from origin {origin[:100]!r}: pages of other "
            "origins cannot act on this server"
        )
    return None
