"""Errors the store raises, and the one signal its transactions share.

``RequestExists``, ``StoreUnreachable``, ``DuplicateKey`` and ``StoreRefused`` are the
store's own; the others are public (``cairn.errors``) and named here too, so that
the store's modules find all of them in one place.
"""

from __future__ import annotations

from cairn import errors
from cairn.errors import RequestNotFound as RequestNotFound
from cairn.errors import RequestRunning as RequestRunning
from cairn.errors import StoreError as StoreError
from cairn.errors import StoreReplaced as StoreReplaced


class RequestExists(errors.CairnError):
    """A request with that id already exists."""

    code = "request_exists"


class StoreUnreachable(errors.StoreError):
    """The store could not be reached, for a reason that may pass (a server
    starting, restarting or not listening yet); trying again may succeed."""


class DuplicateKey(errors.StoreError):
    """A write broke a unique key; its transaction rolled back."""


class StoreRefused(errors.StoreError):
    """The database answered a write with an error that trying again does not
    change: a value it cannot hold (too large, say), a constraint the write
    breaks. The transaction rolled back; the store itself is fine."""


class RollbackWith(Exception):
    """Raised by a transaction body: roll back, and return ``value`` from ``write``."""

    def __init__(self, value: object) -> None:
        super().__init__("rollback")
        self.value = value
