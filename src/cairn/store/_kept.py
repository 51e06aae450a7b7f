"""A store kept open between uses, and when it was last found to be the one at
its URL (the file or database may be deleted, dropped or re-created meanwhile).

A SQLite check is one stat() (~2 µs): before every use, so that nothing is read
from or written to a deleted file. A PostgreSQL check is a query, a round trip
that was a tenth of a short request's time: at most once a second. A database
dropped within that second fails the next statement instead, and the holder
closes the store, so that its next use opens the one at the URL now.
"""

from __future__ import annotations

import time

from ._base import Store

CHECK_FILE_EVERY_S = 0.0
CHECK_DATABASE_EVERY_S = 1.0


class KeptStore:
    """An open store and when its check last passed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.checked_at = time.monotonic()
        self._check_every_s = (
            CHECK_FILE_EVERY_S
            if store.url.startswith("sqlite:")
            else CHECK_DATABASE_EVERY_S
        )

    def check(self) -> None:
        """Raise StoreError (StoreReplaced if the store at the URL is another one),
        when a check is due."""
        now = time.monotonic()
        if now - self.checked_at < self._check_every_s:
            return
        self.store.check()
        self.checked_at = now
