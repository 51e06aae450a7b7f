"""The dashboard ``cairn serve`` shows at ``/`` and ``/ui``.

Server-rendered pages (Jinja, autoescaped) over the same store reads as the JSON
API, plus a small plain script shipped with them (no build step, nothing fetched
from elsewhere): the requests page follows running requests over one event
stream, the request page follows its request over the API's progress stream, and
actions (invoke, replay, cancel) call the JSON API. With an API key the pages
ask for it once (``_session``).

Modules: ``_pages`` (routes, the requests page, login), ``_request_page`` (the
request page and its updates), ``_tree`` (what a request page shows, read a page
at a time), ``_rows`` (the call tree's rows), ``_timeline`` (every run on one
track), ``_live`` (updates send what changed), ``_views`` (records -> what
templates show), ``_values`` (inputs and outputs, decoded without running user
code, their text under a budget), ``_decoding`` (that work off the event loop:
JSON in a thread, pickles in a child process), ``_journal`` (progress messages,
paged), ``_stream`` (the requests page's live stream), ``_session`` (login
cookie), ``_render`` (templates and page headers).
"""

from __future__ import annotations

from ._pages import PREFIX, Dashboard
from ._session import COOKIE, cookie_value, same_origin, valid

__all__ = [
    "COOKIE",
    "PREFIX",
    "Dashboard",
    "cookie_value",
    "is_open",
    "is_page",
    "same_origin",
    "valid",
]

_OPEN = (f"{PREFIX}/static/",)
_OPEN_PATHS = frozenset({f"{PREFIX}/login", f"{PREFIX}/logout"})


def is_page(path: str) -> bool:
    """Whether ``path`` is the dashboard's (a browser gets a login page, not a 401)."""
    return path in ("/", PREFIX) or path.startswith(f"{PREFIX}/")


def is_open(path: str) -> bool:
    """Whether ``path`` needs no key: the login form and the static files."""
    return path in _OPEN_PATHS or path.startswith(_OPEN)
