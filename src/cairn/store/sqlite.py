"""The embedded store: one SQLite file in WAL mode, opened, migrated and locked
for writes by ``_sqlite_file``; here, the dialect the SQL store runs on it.

``synchronous=FULL`` by default: a committed checkpoint survives a power cut.
``?synchronous=normal`` keeps commits across process crashes only, and is
several times faster.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from . import _sql
from ._dialect import Notify, Statement, Tx
from ._sqlite_file import StoreFile, statements
from ._store import SqlStore
from .errors import RollbackWith

T = TypeVar("T")

Q = _sql.queries("sqlite")


# Queries of several statements (SQLite has no UPDATE inside a WITH), run in order;
# the last one's cursor is the answer.
_SEVERAL = {name: parts for name, q in Q.items() if len(parts := statements(q)) > 1}


def _has_list(params: Mapping[str, Any]) -> bool:
    for value in params.values():
        if isinstance(value, list):
            return True
    return False


class _Tx:
    """A transaction (or the reads) of the store's one connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, name: str, params: Mapping[str, Any], /) -> sqlite3.Cursor:
        if not (type(params) is dict and not _has_list(params)):
            # SQLite binds no lists: a list goes as JSON, read with json_each.
            params = {
                key: json.dumps(value) if isinstance(value, list) else value
                for key, value in params.items()
            }
        several = _SEVERAL.get(name)
        if several is None:
            return self._conn.execute(Q[name], params)
        for statement in several[:-1]:
            self._conn.execute(statement, params)
        return self._conn.execute(several[-1], params)

    def executemany(self, name: str, params: Sequence[Mapping[str, Any]]) -> None:
        self._conn.executemany(Q[name], params)

    def read_after_commit(
        self, name: str, params: Mapping[str, Any], /
    ) -> Callable[[], Any]:
        row = self.execute(name, params).fetchone()  # no round trip to save
        return lambda: row


class SQLiteDialect:
    """One SQLite file: reads on its connection, writes under ``BEGIN IMMEDIATE``."""

    caches_idle = False  # data_version does not change on this connection's commits

    def __init__(self, url: str) -> None:
        self.file = StoreFile(url)
        self.schema_before = self.file.schema_before
        self._reads = _Tx(self.file.conn)

    def read(self, body: Callable[[Tx], T]) -> T:
        return body(self._reads)

    def write(
        self,
        body: Callable[[Tx], T],
        *,
        notify: Notify | Callable[[T], Notify] = True,
        pipelined: bool = False,
    ) -> T:
        # Other processes learn of commits by polling data_version: no notify.
        try:
            with self.file.write() as conn:
                return body(_Tx(conn))
        except RollbackWith as rollback:
            return cast(T, rollback.value)

    def write_all(
        self, statements: Sequence[Statement], *, notify: Notify = True
    ) -> list[int] | None:
        with self.file.write() as conn:
            tx = _Tx(conn)
            counts = []
            for name, params in statements:
                if isinstance(params, Mapping):
                    counts.append(tx.execute(name, params).rowcount)
                else:
                    counts.append(conn.executemany(Q[name], params).rowcount)
            return counts

    def write_one(
        self, name: str, params: Mapping[str, Any], *, notify: Notify = True
    ) -> list[Any] | None:
        with self.file.write() as conn:
            return _Tx(conn).execute(name, params).fetchall()

    def stream(self, name: str, params: Mapping[str, Any]) -> Iterator[Any]:
        yield from self._reads.execute(name, params)

    def change_token(self, *, queue: bool = False) -> int:
        """SQLite's data_version: changes when another connection commits."""
        return int(self.file.conn.execute("PRAGMA data_version").fetchone()[0])

    def check(self) -> None:
        """The file this connection writes must still be the one at the path."""
        self.file.check()

    def close(self) -> None:
        self.file.close()


class SQLiteStore(SqlStore):
    """The store on one SQLite file."""

    def __init__(self, url: str) -> None:
        dialect = SQLiteDialect(url)
        super().__init__(url, dialect)
        self.path: Path = dialect.file.path
        self._conn = dialect.file.conn

    def reopen(self) -> SQLiteStore:
        """A new connection to the same file."""
        return SQLiteStore(self.url)
