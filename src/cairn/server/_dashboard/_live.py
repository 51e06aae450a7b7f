"""Live updates of a request page send what changed, not the page again.

Each part of a page (its head, its values, its progress log, every row of its call
tree) has a fingerprint, a hash of what it shows. The server remembers, per open
page (a random token it gives the page), the fingerprints it last sent, as a
numbered version. A page asks for an update naming the version it has; the answer
carries every part's key in order and the HTML of the parts whose fingerprint
changed since, and the page patches itself. A page whose version the server does
not have (the server restarted, or forgot the page among many) gets everything.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Mapping

# Open pages remembered (a page not heard from for that long is forgotten first).
PAGES = 256
_TOKEN_CHARS = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
)


def valid_token(token: str) -> bool:
    """Whether ``token`` could be one ``Versions`` gave out."""
    return 0 < len(token) <= 64 and set(token) <= _TOKEN_CHARS


class Versions:
    """The fingerprints last sent to each open page."""

    def __init__(self, pages: int = PAGES) -> None:
        self._pages = pages
        self._sent: OrderedDict[str, tuple[int, dict[str, int]]] = OrderedDict()

    def start(self, prints: Mapping[str, int]) -> tuple[str, int]:
        """A new page's token and first version, for the parts it was rendered with."""
        token = secrets.token_urlsafe(12)
        self._remember(token, 1, prints)
        return token, 1

    def changed(
        self, token: str, have: int, prints: Mapping[str, int]
    ) -> tuple[int, set[str]]:
        """The next version of a page, and the keys of the parts to send it."""
        sent = self._sent.get(token)
        if sent is None or sent[0] != have:
            changed = set(prints)
        else:
            before = sent[1]
            changed = {key for key, value in prints.items() if before.get(key) != value}
        version = have + 1
        self._remember(token, version, prints)
        return version, changed

    def _remember(self, token: str, version: int, prints: Mapping[str, int]) -> None:
        self._sent[token] = (version, dict(prints))
        self._sent.move_to_end(token)
        while len(self._sent) > self._pages:
            self._sent.popitem(last=False)
