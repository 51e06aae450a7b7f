"""The shared store: one PostgreSQL database that many workers on many hosts use;
here, the dialect the SQL store runs on it (``_pg`` runs its transactions).

Same semantics as the SQLite store, with concurrency handled by the database rather
than by a single writer. Transactions run at READ COMMITTED with row locks where
SQLite relied on serialized writers:

- claims pick a row with ``FOR UPDATE SKIP LOCKED`` and update it in one statement,
  so two workers never claim one call and never wait on each other;
- every commit of a call takes its request's row lock before it appends events or
  looks at the request's end, so event sequence numbers are never reused and
  exactly one transaction sees a request's last call finish and ends the request.
  Checkpoint commits write their own (claimed) call rows before taking it, so the
  lock is held for one statement, the end check and the commit: with many workers
  on one map, time under that lock is what they queue for. (Deadlocks, should two
  transactions ever cross, are retried like lost connections.) The commit of an
  application call that ends its request is one statement, which looks at the
  request's dispatched calls before it waits for the lock: where it sees one still
  to finish, it writes nothing and the commit goes the general way.
- ``max_concurrency`` counts a function's running calls under a transaction-level
  advisory lock per function, so the cap holds across workers.

A transaction that writes news sends a ``NOTIFY`` (delivered if and only if it
commits); ``change_token`` counts them on one ``LISTEN`` connection per process
tree (``_pgshare``: the stores of a process share its connections). A
notifying commit holds PostgreSQL's database-wide notify lock through its WAL
flush, so claims do not notify (unless a request starts) and checkpoint commits
notify at most every 50 ms per store, and always when they end a request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, LiteralString, TypeVar

import psycopg

from . import _sql
from ._dialect import Notify, Statement, Tx
from ._pg import Database
from ._pglink import Connection
from ._store import SqlStore
from .errors import StoreError

T = TypeVar("T")

Q: dict[str, LiteralString] = _sql.queries("postgres")
# Queries whose answers carry blobs (or many rows of them): read in binary, which
# spares bytea its hex encoding.
_BINARY = frozenset(
    {
        "get_request",
        "end_with_checkpoint",
        "list_requests",
        "recorded_children",
        "call_output",
        "call_args",
        "call_state_writes",
        "claim_any",
        "claim_in_group",
        "claim_one",
        "claim_batch_in_group",
        "root_outcome",
        "succeeded_args_in_group",
        "state_get",
    }
)
_GROUP_BATCH = 16


class _Tx:
    """A connection of the pool, in a transaction or between reads."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def execute(self, name: str, params: Mapping[str, Any], /) -> psycopg.Cursor[Any]:
        return self._conn.execute(Q[name], params, binary=name in _BINARY)

    def executemany(self, name: str, params: Sequence[Mapping[str, Any]]) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(Q[name], params)

    def read_after_commit(
        self, name: str, params: Mapping[str, Any], /
    ) -> Callable[[], Any]:
        cursor = self.execute(name, params)

        def row() -> Any:
            try:
                return cursor.fetchone()
            except psycopg.Error:
                return None  # the commit's answer was lost (it is settled apart)

        return row


class PostgresDialect:
    """One PostgreSQL database: pooled connections, retried transactions, and
    wake-ups by ``LISTEN``/``NOTIFY``."""

    caches_idle = True  # change_token counts this process's commits too

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.schema_before = self.db.schema_before
        self._fallback_token = 0

    def read(self, body: Callable[[Tx], T]) -> T:
        return self.db.read(lambda conn: body(_Tx(conn)))

    def write(
        self,
        body: Callable[[Tx], T],
        *,
        notify: Notify | Callable[[T], Notify] = True,
        pipelined: bool = False,
    ) -> T:
        return self.db.write(
            lambda conn: body(_Tx(conn)), notify=notify, pipelined=pipelined
        )

    def write_all(
        self, statements: Sequence[Statement], *, notify: Notify = True
    ) -> list[int] | None:
        return self.db.write_all(
            [(Q[name], params) for name, params in statements], notify=notify
        )

    def write_one(
        self, name: str, params: Mapping[str, Any], *, notify: Notify = True
    ) -> list[Any] | None:
        return self.db.write_one(Q[name], params, notify=notify, binary=name in _BINARY)

    def stream(self, name: str, params: Mapping[str, Any]) -> Iterator[Any]:
        try:
            with self.db.connection() as conn, conn.transaction():
                with conn.cursor(name=f"cairn_{name}", binary=True) as cursor:
                    cursor.itersize = _GROUP_BATCH
                    cursor.execute(Q[name], params)
                    yield from cursor
        except psycopg.Error as error:
            detail = " ".join(str(error).split())
            of = ", ".join(repr(value) for value in params.values())
            raise StoreError(f"reading {name} of {of} failed: {detail}") from None

    def change_token(self, *, queue: bool = False) -> int:
        """Counts commits: this process's at once, other processes' as PostgreSQL
        notifies them (``queue``: only those that may have made work due). While
        the listening connection is down, every call returns a new value, so that
        waiters look at the store instead of missing a change."""
        count = self.db.change_count(queue=queue)
        if count is None:
            self._fallback_token += 1
            return -self._fallback_token
        return count

    def check(self) -> None:
        """Raise StoreReplaced if the database (or its Cairn tables) went away."""
        self.db.check()

    def close(self) -> None:
        self.db.close()


class PostgresStore(SqlStore):
    """The store on one PostgreSQL database (``postgresql://user@host:port/db``)."""

    def __init__(self, url: str) -> None:
        dialect = PostgresDialect(url)
        super().__init__(url, dialect)
        self._db = dialect.db

    def reopen(self) -> PostgresStore:
        """A new store (its own connections) on the same database."""
        return PostgresStore(self.url)
