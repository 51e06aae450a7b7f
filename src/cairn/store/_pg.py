"""PostgreSQL plumbing under the store: the schema check and migrations, and
transactions retried over lost connections (``_pglink`` reaches the server).

Retrying is safe because a transaction that did not commit left nothing behind. The
one ambiguous case, a connection lost while ``COMMIT`` was in flight, is settled by
what the database holds: every write stamps its connection's row of
``commit_marks`` with a fresh mark, so the mark is there if and only if the
transaction committed. A commit is reported only when it happened, and the body runs
again only when it did not. (Not by ``pg_xact_status``: after a crash PostgreSQL
hands a lost transaction's id to a later transaction, whose commit then makes the
lost one look committed.)
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import secrets
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, LiteralString, TypeVar, cast

import psycopg
from psycopg import errors as pgerrors
from psycopg.conninfo import make_conninfo

from cairn import errors

from . import _pgshare, _sql
from ._base import SCHEMA_VERSION
from ._dialect import PROGRESS, Notify
from ._pglink import (
    BACKOFF_FIRST_S,
    BACKOFF_MAX_S,
    CHANNEL,
    Connection,
    describe,
    explain,
    parse_url,
    sqlstate,
    transient,
)
from ._pgmarks import Statement, answered, send_alone, send_whole
from .errors import DuplicateKey, RollbackWith, StoreRefused, StoreUnreachable

logger = logging.getLogger("cairn.store.postgres")

T = TypeVar("T")

_MIGRATION_LOCK = 7460_0001
# SQLSTATE classes of a write refused for good: data exceptions (a value the column
# cannot hold), integrity constraints, program limits (a value over 1 GB).
_REFUSALS = ("22", "23", "54")

Q: dict[str, LiteralString] = _sql.blocks("postgres_link")

# Notifications carry the origin of their commit: a listener skips its own
# process's, which that process counts at once (``_pgshare.Link.committed``);
# after a space, "progress" for a commit that made no work due.
_PROCESS_NONCE = secrets.token_hex(6)
# Commit marks: unique within a slot is enough, and a slot is one connection's.
_marks = itertools.count(1)


class _Retry(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


# -- schema ---------------------------------------------------------------------------------
def schema_version(conn: Connection, where: str) -> int:
    """The schema version (0 for an empty schema); refuses foreign databases."""
    rows = conn.execute(Q["tables"]).fetchall()
    tables = {row[0] for row in rows}
    if "cairn_meta" not in tables:
        if tables:
            raise errors.StoreError(
                f"{where} is a PostgreSQL database but not a Cairn store (it has "
                f"tables {', '.join(sorted(tables)[:5])}); refusing to touch it"
            )
        return 0
    row = conn.execute(Q["schema_version"]).fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise errors.StoreError(
            f"store {where} has schema version {version}, newer than this Cairn's "
            f"{SCHEMA_VERSION}: upgrade Cairn to use it"
        )
    return version


def migrate(conn: Connection, where: str) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; return the version found before.

    Concurrent openers wait on one advisory lock, and DDL is transactional: a
    migration is applied whole, once.
    """
    before = schema_version(conn, where)
    if before == SCHEMA_VERSION:
        return before
    try:
        with conn.transaction():
            conn.execute(Q["migration_lock"], {"lock": _MIGRATION_LOCK})
            version = schema_version(conn, where)
            for number, _name, script in _sql.migrations("postgres"):
                if number > version:
                    conn.execute(script)
                    conn.execute(Q["set_schema_version"], {"version": str(number)})
    except pgerrors.InsufficientPrivilege as error:
        raise errors.StoreError(
            f"cannot create Cairn's tables in {where}: {' '.join(str(error).split())} "
            "(run `cairn db migrate` as a user who may, or grant CREATE on the schema)"
        ) from None
    except pgerrors.InvalidSchemaName as error:
        raise errors.StoreError(
            f"cannot create Cairn's tables in {where}: {' '.join(str(error).split())} "
            "(the search_path names no existing schema)"
        ) from None
    return before


def identity(conn: Connection) -> tuple[int, int]:
    """Which database and which ``calls`` table these are (their oids)."""
    row = conn.execute(Q["identity"]).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# -- the database -----------------------------------------------------------------------------
class Database:
    """One PostgreSQL database: reused connections, retried transactions, wake-ups."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.params, self.retry_s = parse_url(url)
        self.where = f"PostgreSQL database {describe(self.params)}"
        self.conninfo = make_conninfo("", **self.params)
        self.key = hashlib.sha1(self.conninfo.encode()).hexdigest()[:12]
        self.origin = f"{_PROCESS_NONCE}:{os.getpid()}:{self.key}"
        # Connections and the listener are the process's, shared by its stores.
        self._link = _pgshare.acquire(self.key, self.conninfo, self.origin, self.where)
        self._pool = self._link.pool
        self._closed = False
        # A store dropped without close() still lets go of its connections, from
        # the thread that dropped it (never in a forked child: they are the parent's).
        self._release = weakref.finalize(self, _pgshare.release, self._link)
        self.schema_before, self.identity = self._prepare()

    def _prepare(self) -> tuple[int, tuple[int, int]]:
        # On a connection another store of this process left idle, if it still
        # works (the server may have restarted since), else on a new one.
        reused = self._pool.idle()
        while True:
            conn = reused or self.connect()
            try:
                before = migrate(conn, self.where)
                found = identity(conn)
                conn.execute(Q["prune_commit_marks"])
            except psycopg.Error as error:
                passing = transient(error, conn)
                conn.close()
                if passing and reused is not None:
                    reused = None
                    continue
                failed = StoreUnreachable if passing else errors.StoreError
                raise failed(
                    f"cannot check the schema of {self.where}: "
                    f"{' '.join(str(error).split())}"
                ) from None
            except BaseException:
                conn.close()
                raise
            self._pool.put(conn)
            return before, found

    def connect(self) -> Connection:
        """A new autocommit connection, or one clear StoreError."""
        try:
            return psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as error:
            message, passing = explain(error, self.params)
            failed = StoreUnreachable if passing else errors.StoreError
            raise failed(message) from None

    def close(self) -> None:
        """Stop the listener and close every connection."""
        if self._closed:
            return
        self._closed = True
        self._release()

    # -- running transactions ------------------------------------------------------------
    def read(self, body: Callable[[Connection], T]) -> T:
        """Run read-only statements (each its own snapshot), retried if the link drops."""
        return self._retrying(lambda: self._read_once(body))

    def write(
        self,
        body: Callable[[Connection], T],
        *,
        notify: Notify | Callable[[T], Notify] = True,
        pipelined: bool = False,
    ) -> T:
        """Run ``body`` in one READ COMMITTED transaction and commit it.

        Retried from the start when the connection drops (the transaction then did
        not commit) or PostgreSQL reports a deadlock or serialization failure.
        ``notify`` (or ``notify(result)``) wakes every listener when the
        transaction wrote something. A commit that notifies holds PostgreSQL's
        database-wide notify lock through its WAL flush, so commits that nobody
        waits for (claims, a map's items) should not.

        ``pipelined`` sends the statements without waiting for each answer until
        one is read, and the commit mark with COMMIT (one wait for the begin, the
        body's reads and the commit: a claim waits twice). A statement's error
        then surfaces at the next read, not at its ``execute``: only for bodies
        that catch no database error themselves.
        """
        if pipelined:
            return self._retrying(lambda: self._write_piped_once(body, notify))
        return self._retrying(lambda: self._write_once(body, notify))

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection for a streaming read (no retry once rows flowed)."""
        with self._checkout() as conn:
            yield conn

    def _retrying(self, once: Callable[[], T]) -> T:
        deadline: float | None = None
        delay = BACKOFF_FIRST_S
        while True:
            try:
                result = once()
            except _Retry as retry:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.retry_s
                    logger.warning(
                        "lost the connection to %s (%s); reconnecting",
                        self.where,
                        " ".join(str(retry.cause).split())
                        or type(retry.cause).__name__,
                        extra={"action": "store_reconnect"},
                    )
                if now >= deadline:
                    raise errors.StoreError(
                        f"lost the connection to {self.where} and could not get it "
                        f"back within {self.retry_s:g}s: {retry.cause}"
                    ) from None
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if deadline is not None:
                logger.warning(
                    "reconnected to %s",
                    self.where,
                    extra={"action": "store_reconnected"},
                )
            return result

    @contextmanager
    def _checkout(self) -> Iterator[Connection]:
        if self._closed:
            raise errors.StoreError(f"the store on {self.where} is closed")
        try:
            conn = self._pool.get()
        except psycopg.Error as error:
            message, transient = explain(error, self.params)
            if sqlstate(error) == "3D000":
                raise errors.StoreReplaced(
                    f"{self.where} was dropped while in use"
                ) from None
            if not transient:
                raise errors.StoreError(message) from None
            raise _Retry(error) from None
        try:
            yield conn
        finally:
            self._pool.put(conn)

    def check(self) -> None:
        """Raise StoreReplaced if the database or its tables are not the ones opened."""
        if self.read(identity) != self.identity:
            raise errors.StoreReplaced(
                f"the Cairn tables of {self.where} were dropped or re-created while in use"
            )

    def _read_once(self, body: Callable[[Connection], T]) -> T:
        with self._checkout() as conn:
            try:
                return body(conn)
            except psycopg.Error as error:
                if transient(error, conn):
                    raise _Retry(error) from None
                raise self._failed(error) from None

    def _write_once(
        self, body: Callable[[Connection], T], notify: Notify | Callable[[T], Notify]
    ) -> T:
        with self._checkout() as conn:
            slot = self._pool.slot(conn)
            mark: int | None = None
            committing = False
            try:
                with conn.transaction():
                    result = body(conn)
                    if callable(notify):
                        notify = notify(result)
                    row = conn.execute(
                        Q["end_transaction"], self._stamp(slot, next(_marks), notify)
                    ).fetchone()
                    mark = row[0] if row else None
                    committing = True
            except RollbackWith as rollback:
                return cast(T, rollback.value)
            except psycopg.Error as error:
                if committing and mark is None:
                    return result  # it wrote nothing: there was nothing to commit
                # Any error once COMMIT was sent is settled, not only a broken
                # link: a backend terminated mid-commit may answer with an error
                # before the connection reads as broken.
                if committing and self.committed(slot, cast(int, mark), error):
                    pass
                elif transient(error, conn):
                    raise _Retry(error) from None
                else:
                    raise self._failed(error) from None
        if mark is not None:
            self._count_commit(notify)
        return result

    def _write_piped_once(
        self, body: Callable[[Connection], T], notify: Notify | Callable[[T], Notify]
    ) -> T:
        with self._checkout() as conn:
            slot = self._pool.slot(conn)
            mark = next(_marks)
            committing = False
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    try:
                        result = body(conn)
                    except psycopg.Error:
                        raise  # the transaction is aborted: the pool drops the link
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    if callable(notify):
                        notify = notify(result)
                    stamp = conn.execute(
                        Q["end_transaction"], self._stamp(slot, mark, notify)
                    )
                    committing = True
                    conn.execute("COMMIT")
                row = stamp.fetchone()
            except RollbackWith as rollback:
                return cast(T, rollback.value)
            except psycopg.Error as error:
                # Once COMMIT was sent (with the mark, in one burst), whether it
                # happened is settled by the mark, unless the server answered
                # with a statement's error (then it did not).
                if committing and not answered(error, conn):
                    if not self.committed(slot, mark, error):
                        raise _Retry(error) from None
                    self._count_commit(notify)
                    return result
                if transient(error, conn):
                    raise _Retry(error) from None
                raise self._failed(error) from None
        if row is not None and row[0] is not None:
            self._count_commit(notify)
        return result

    def write_all(
        self, statements: Sequence[Statement], *, notify: Notify = True
    ) -> list[int] | None:
        """Run ``statements`` in one transaction sent whole, in one round trip:
        ``BEGIN``, the statements, the commit mark, ``COMMIT``, then one wait for
        every answer. A single statement (with one set of parameters) goes alone
        instead, with the commit mark in its WITH list: it is its own transaction,
        one message and one answer. Returns each statement's row count (None when
        the answer was lost and the commit mark says the transaction committed).

        For writes that read nothing back before they commit. A statement's
        error rolls the transaction back, as in ``write``; a lost link is
        settled by the commit mark, since the commit may have been sent with it.
        """
        return self._retrying(lambda: self._write_all_once(statements, notify))

    def _write_all_once(
        self, statements: Sequence[Statement], notify: Notify
    ) -> list[int] | None:
        def send(conn: Connection, stamp: dict[str, object]) -> tuple[list[int], bool]:
            query, params = statements[0] if len(statements) == 1 else ("", ())
            if isinstance(params, Mapping):
                return [send_alone(conn, query, params, stamp).rowcount], True
            return send_whole(conn, statements, stamp)

        return self._write_settled(send, notify)

    def write_one(
        self,
        query: LiteralString,
        params: Mapping[str, Any],
        *,
        notify: Notify = True,
        binary: bool = False,
    ) -> list[Any] | None:
        """Run one statement as its own transaction, sent alone with the commit
        mark in its WITH list (as ``write_all`` sends a single statement); its
        rows, or None when the answer was lost but it is known to have committed."""

        def send(conn: Connection, stamp: dict[str, object]) -> tuple[list[Any], bool]:
            cursor = send_alone(conn, query, params, stamp, binary=binary)
            return cursor.fetchall(), True

        return self._retrying(lambda: self._write_settled(send, notify))

    def _write_settled(
        self,
        send: Callable[[Connection, dict[str, object]], tuple[T, bool]],
        notify: Notify,
    ) -> T | None:
        """``send(conn, stamp)`` a write that reads nothing back before it commits,
        with ``stamp`` its commit mark's parameters; its result and whether it
        wrote. A lost answer is settled by the mark: None if it committed."""
        with self._checkout() as conn:
            slot, mark = self._pool.slot(conn), next(_marks)
            try:
                result, wrote = send(conn, self._stamp(slot, mark, notify))
            except psycopg.Error as error:
                if not answered(error, conn):
                    if not self.committed(slot, mark, error):
                        raise _Retry(error) from None
                    self._count_commit(notify)
                    return None
                if transient(error, conn):
                    raise _Retry(error) from None
                raise self._failed(error) from None
        if wrote:
            self._count_commit(notify)
        return result

    def _stamp(self, slot: str, mark: int, notify: Notify) -> dict[str, object]:
        return {
            "slot": slot,
            "mark": mark,
            "notify": bool(notify),
            "channel": CHANNEL,
            "origin": f"{self.origin} {PROGRESS}"
            if notify == PROGRESS
            else self.origin,
        }

    def _count_commit(self, notify: Notify | Callable[[Any], Notify]) -> None:
        """Count a commit that notified (``notify`` resolved by the body's result;
        still a callable when the body never ran to the end)."""
        if notify and not callable(notify):
            self._link.committed(queue=notify is True)

    def committed(self, slot: str, mark: int, lost: psycopg.Error) -> bool:
        """Whether the transaction that stamped ``mark`` on ``slot`` committed.

        Asked on a new connection when the answer to its COMMIT was lost. A
        transaction of that connection still committing holds the slot's row lock,
        so the question waits for it to end; one that never committed left the
        slot's previous mark (or none: the slot is then marked, so that it cannot
        commit later).
        """
        deadline = time.monotonic() + self.retry_s
        delay = BACKOFF_FIRST_S
        logger.warning(
            "lost the connection to %s while committing (%s); checking whether the "
            "commit happened",
            self.where,
            " ".join(str(lost).split()) or type(lost).__name__,
            extra={"action": "store_commit_unknown"},
        )
        while (left_s := deadline - time.monotonic()) > 0:
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"SET lock_timeout = {max(1, int(left_s * 1000))}")
                    row = conn.execute(Q["settle_commit"], {"slot": slot}).fetchone()
            except psycopg.Error:
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            happened = row is not None and row[0] == mark
            logger.warning(
                "the commit whose answer was lost %s",
                "happened" if happened else "did not happen; trying again",
                extra={"action": "store_commit_settled"},
            )
            return happened
        raise errors.StoreError(
            f"lost the connection to {self.where} while committing, and could not "
            f"learn within {self.retry_s:g}s whether the commit happened: {lost}"
        )

    def _failed(self, error: psycopg.Error) -> errors.StoreError:
        detail = " ".join(str(error).split())
        state = f" [{error.sqlstate}]" if error.sqlstate else ""
        failed = errors.StoreError
        if error.sqlstate == "23505":
            failed = DuplicateKey
        elif error.sqlstate == "42P01":
            # Cairn's tables were there when the store opened (it made them).
            return errors.StoreReplaced(
                f"the Cairn tables of {self.where} were dropped while in use: {detail}"
            )
        elif (error.sqlstate or "")[:2] in _REFUSALS:
            failed = StoreRefused
        return failed(f"{self.where} failed a query{state}: {detail}")

    # -- wake-ups ---------------------------------------------------------------------------
    def change_count(self, *, queue: bool = False) -> int | None:
        """Commits seen (this process's and notified ones; ``queue``: those that
        may have made work due); None while not listening."""
        return self._link.change_count(
            float(self.params["connect_timeout"]), queue=queue
        )
