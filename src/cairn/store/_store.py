"""``SqlStore``: every operation of the store, written once over a ``Dialect``
(``sqlite.py``, ``postgres.py``), grouped by the roles of ``_base``."""

from __future__ import annotations

from ._admin import AdminOps
from ._browse import Browsing
from ._dialect import Dialect
from ._journal import JournalOps
from ._queue import QueueOps
from ._requests import RequestOps
from ._schedules import ScheduleOps
from ._waits import WaitOps


class SqlStore(
    RequestOps, JournalOps, QueueOps, AdminOps, Browsing, WaitOps, ScheduleOps
):
    """The store on a SQL database, whose dialect runs the named queries."""

    def __init__(self, url: str, dialect: Dialect) -> None:
        self.url = url
        self._dialect = dialect
