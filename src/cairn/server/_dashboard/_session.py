"""The dashboard's login: a session cookie instead of the API key in every request.

A browser cannot add ``Authorization: Bearer`` to a page load or an
``EventSource``, and the key must not go in a URL or in storage that scripts can
read. So the login form posts the key once; the server answers with an HttpOnly,
SameSite=Strict cookie holding ``<issued>.<HMAC-SHA256(key, issued)>``: it proves
the key was known without containing it, expires after ``SESSION_S``, and stops
working when the key changes. A cookie rides along with cross-site requests that
SameSite does not stop (and with any request the browser makes), so unsafe
methods authenticated by the cookie alone must also come from the dashboard's own
origin (``same_origin``).
"""

from __future__ import annotations

import hashlib
import hmac
import time

COOKIE = "cairn_session"
SESSION_S = 7 * 24 * 3600
_VERSION = "v1"
# Clock differences tolerated for a cookie issued "in the future".
_SKEW_S = 300


def _signature(key: bytes, issued_s: int) -> str:
    message = f"cairn-dashboard-session:{_VERSION}:{issued_s}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def token(key: bytes, now_s: float | None = None) -> str:
    """A new session token for the API key ``key``."""
    issued_s = int(time.time() if now_s is None else now_s)
    return f"{_VERSION}.{issued_s}.{_signature(key, issued_s)}"


def valid(key: bytes, value: str, now_s: float | None = None) -> bool:
    """Whether ``value`` is a token of ``key`` that has not expired."""
    version, _, rest = value.partition(".")
    issued, _, signature = rest.partition(".")
    if version != _VERSION or not issued.isascii() or not issued.isdigit():
        return False
    if len(issued) > 12:
        return False
    issued_s = int(issued)
    now = time.time() if now_s is None else now_s
    if not (now - SESSION_S <= issued_s <= now + _SKEW_S):
        return False
    # compare_digest takes the same time wherever the first difference is.
    return hmac.compare_digest(
        signature.encode("ascii", "replace"), _signature(key, issued_s).encode()
    )


def cookie_value(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The session cookie of a request's raw headers, if it sent one."""
    for name, value in headers:
        if name != b"cookie":
            continue
        for item in value.decode("latin-1").split(";"):
            cookie_name, _, cookie = item.strip().partition("=")
            if cookie_name == COOKIE:
                return cookie.strip('"')
    return None


def same_origin(headers: list[tuple[bytes, bytes]], scheme: str) -> bool:
    """Whether a browser says the request comes from a page of this server.

    ``Sec-Fetch-Site`` (every current browser) must be ``same-origin``; without
    it, ``Origin`` must name this host. A request with neither is refused: a
    browser sends at least ``Origin`` with every unsafe request.
    """
    values = {name: value.decode("latin-1") for name, value in headers}
    site = values.get(b"sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin, host = values.get(b"origin"), values.get(b"host")
    if not origin or not host:
        return False
    return origin == f"{scheme}://{host}"
