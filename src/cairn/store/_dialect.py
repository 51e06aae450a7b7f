"""What the one SQL store asks of a database: the dialect seam.

``SqlStore`` writes every operation once, as named queries (``sql/<dialect>.sql``)
run in transactions; a dialect runs them. It binds parameters as its driver
does (SQLite binds no lists: a list goes as JSON, read with ``json_each``),
retries what may be retried, and wakes waiters. Locking differs by queries, not
by code: ``lock_request`` and ``lock_function`` take row and advisory locks on
PostgreSQL and are plain reads on SQLite, whose writers are serialized.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")
# How a commit wakes other processes' waiters: not at all, as a change of the
# queue (work may be due: idle workers look), or as progress only (a checkpoint,
# a progress update, a request's end: waiters of requests look, idle workers not).
Notify = bool | Literal["progress"]
PROGRESS: Literal["progress"] = "progress"
# A statement of ``write_all``: a query's name, and its parameters (a list of
# them: the query runs once per set).
Statement = tuple[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]]


class Cursor(Protocol):
    """What a query's answer is read with (``sqlite3`` and ``psycopg`` cursors)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Execute(Protocol):
    """Runs a named query of the store's dialect, with lists bound as the dialect
    binds them."""

    def __call__(self, name: str, params: Mapping[str, Any], /) -> Cursor: ...


class Tx(Protocol):
    """A connection inside a read or a write transaction."""

    def execute(self, name: str, params: Mapping[str, Any], /) -> Cursor:
        """Run a named query."""

    def executemany(self, name: str, params: Sequence[Mapping[str, Any]]) -> None:
        """Run a named query once per parameter set."""

    def read_after_commit(
        self, name: str, params: Mapping[str, Any], /
    ) -> Callable[[], Any]:
        """Run a named query in the write transaction, its one row to be read
        once the transaction has committed (on PostgreSQL its answer comes with
        the commit's, in the same round trip): the row, or None (none, or the
        answer was lost)."""


class Dialect(Protocol):
    """One database, as the SQL store uses it."""

    schema_before: int
    """The schema version the store had when opened (0: opening created it)."""

    caches_idle: bool
    """Whether ``change_token`` changes on every commit, this connection's own
    included: an idle worker may then trust "nothing due before T" until it does."""

    def read(self, body: Callable[[Tx], T]) -> T:
        """Run reads (each statement its own snapshot)."""

    def write(
        self,
        body: Callable[[Tx], T],
        *,
        notify: Notify | Callable[[T], Notify] = True,
        pipelined: bool = False,
    ) -> T:
        """Run ``body`` in one write transaction and commit it; ``RollbackWith``
        raised by the body rolls back and returns its value.

        ``notify`` (or ``notify(result)``): whether, and as what, the commit
        wakes other processes' waiters, where the dialect notifies.
        ``pipelined``: the body catches no database error, so its statements
        may be sent without waiting for each answer."""

    def write_all(
        self, statements: Sequence[Statement], *, notify: Notify = True
    ) -> list[int] | None:
        """Run named queries in one write transaction that reads nothing back
        before it commits (on PostgreSQL: sent whole, one round trip; a single
        statement is sent alone, its own transaction). Returns
        each one's row count, or None where the answer was lost but the
        transaction is known to have committed."""

    def write_one(
        self, name: str, params: Mapping[str, Any], *, notify: Notify = True
    ) -> list[Any] | None:
        """Run one named query as a write transaction of its own (on PostgreSQL,
        one statement sent alone: one message, one answer). Returns its rows, or
        None where the answer was lost but it is known to have committed."""

    def stream(self, name: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """The rows of a named query, read a few at a time."""

    def change_token(self, *, queue: bool = False) -> int:
        """A number that changes when another connection commits (cheap to poll);
        ``queue``: only on commits that may have made work due."""

    def check(self) -> None:
        """Raise StoreError if the store is unusable (StoreReplaced if it is gone)."""

    def close(self) -> None:
        """Release connections."""
