"""The store seam: ``open_store(url)`` picks a backend by the URL's scheme."""

from __future__ import annotations

import urllib.parse

from . import errors
from ._base import SCHEMA_VERSION, Store
from ._browse import CallCounts, CallEntry, GroupTally, RequestQuery, RunSpan
from ._kept import KeptStore
from ._records import (
    AttemptRecord,
    Bucket,
    CallFailure,
    CallKey,
    CallRecord,
    CallSuccess,
    ClaimedCall,
    ClaimScope,
    Event,
    EventRecord,
    FlowLimits,
    NewRequest,
    RecordedChild,
    RequestOutcome,
    RequestRecord,
    RunningCall,
)
from ._schedules import ScheduleRecord, Tick
from ._sqlbase import this_host
from ._urls import redact as redact_url
from ._waits import NEVER_MS, Delivery, Park, SignalRecord, WaitRecord
from .errors import RequestExists, StoreRefused, StoreUnreachable

__all__ = [
    "NEVER_MS",
    "SCHEMA_VERSION",
    "AttemptRecord",
    "Bucket",
    "CallCounts",
    "CallEntry",
    "CallFailure",
    "CallKey",
    "CallRecord",
    "CallSuccess",
    "ClaimScope",
    "ClaimedCall",
    "Delivery",
    "Event",
    "EventRecord",
    "FlowLimits",
    "GroupTally",
    "KeptStore",
    "NewRequest",
    "Park",
    "RecordedChild",
    "RequestExists",
    "RequestOutcome",
    "RequestQuery",
    "RequestRecord",
    "RunSpan",
    "RunningCall",
    "ScheduleRecord",
    "SignalRecord",
    "Store",
    "StoreRefused",
    "StoreUnreachable",
    "Tick",
    "WaitRecord",
    "default_url",
    "open_store",
    "redact_url",
    "this_host",
]


def default_url() -> str:
    """The store URL from ``CAIRN_STORE``, else ``.cairn/cairn.db`` in the working dir."""
    from . import _sqlite_file

    return _sqlite_file.default_url()


def open_store(url: str | None = None) -> Store:
    """Open (and migrate) the store at ``url``.

    Raises:
        StoreError: the URL is malformed, names an unknown backend, or the store is
            unusable (not a Cairn database, locked, or from a newer Cairn).
    """
    url = url or default_url()
    if not isinstance(url, str):
        raise errors.StoreError(f"store URL must be a string, got {url!r}")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "sqlite":
        from . import sqlite

        return sqlite.SQLiteStore(url)
    if scheme in ("postgresql", "postgres"):
        try:
            from . import postgres
        except ImportError as error:
            raise errors.StoreError(
                "the PostgreSQL store needs psycopg 3 and psycopg-pool: "
                f"pip install 'cairn[postgres]' ({error})"
            ) from None
        return postgres.PostgresStore(url)
    if scheme == "" and url.endswith(".db"):
        from . import sqlite

        return sqlite.SQLiteStore(f"sqlite:///{url}")
    raise errors.StoreError(
        f"unknown store URL {url!r}: expected sqlite:///path.db or postgresql://..."
    )
