"""PostgreSQL plumbing under the store: URLs, clear connection errors, the schema
check, a small connection pool, transactions retried over lost connections, and the
LISTEN thread behind ``change_token``.

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
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, LiteralString, TypeVar, cast

import psycopg
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cairn import errors

from . import _sql
from ._base import SCHEMA_VERSION
from ._urls import redact, timeout_option

logger = logging.getLogger("cairn.store.postgres")

T = TypeVar("T")
Connection = psycopg.Connection[Any]

# Default libpq connect_timeout (seconds) unless the URL sets one.
CONNECT_TIMEOUT_S = 5
# How long an operation keeps trying to reach a server that went away (a restart,
# a failover) before it gives up with a StoreError (``?timeout=SECONDS``). Past
# that, the engine takes over: executors stop and their calls run again later.
RETRY_FOR_S = 30.0
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0
# The listener wakes this often to notice that its store was closed.
_LISTEN_POLL_S = 0.5
CHANNEL = "cairn_changes"
_MIGRATION_LOCK = 7460_0001
# Error classes after which the same transaction may simply run again.
_TRANSIENT_STATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"}

Q: dict[str, LiteralString] = _sql.queries("postgres")

# Commits made by this process, per database. A store in another thread of this
# process (the executor's flusher) must see them at once, without waiting for the
# notification to make its way back; notifications that came from this process
# are then skipped by the listeners, so that no commit counts twice.
_local_commits: dict[str, int] = {}
_local_lock = threading.Lock()
_PROCESS_NONCE = secrets.token_hex(6)
# Commit marks: unique within a slot is enough, and a slot is one connection's.
_marks = itertools.count(1)


class RollbackWith(Exception):
    """Raised by a transaction body: roll back, and return ``value`` from ``write``."""

    def __init__(self, value: object) -> None:
        super().__init__("rollback")
        self.value = value


class _Retry(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


# -- URLs and errors ----------------------------------------------------------------------
def parse_url(url: str) -> tuple[dict[str, str], float]:
    """libpq parameters of a ``postgresql://`` URL with Cairn's defaults, and the
    ``timeout`` option (seconds to keep retrying; Cairn's own, not libpq's)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise errors.StoreError(f"not a PostgreSQL store URL: {redact(url)!r}")
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    retry_s = RETRY_FOR_S
    for key, value in query:
        if key == "timeout":
            retry_s = timeout_option(
                value, url, "seconds an operation keeps trying to reach the database"
            )
    libpq_url = urllib.parse.urlunsplit(
        parts._replace(
            query=urllib.parse.urlencode([(k, v) for k, v in query if k != "timeout"])
        )
    )
    try:
        params = {
            k: str(v) for k, v in conninfo_to_dict(libpq_url).items() if v is not None
        }
    except psycopg.ProgrammingError as error:
        detail = " ".join(str(error).split())
        raise errors.StoreError(
            f"bad PostgreSQL store URL {redact(url)!r}: {detail}"
        ) from None
    params.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    params.setdefault("application_name", "cairn")
    return params, retry_s


def describe(params: dict[str, str]) -> str:
    """``user@host:port/dbname`` as libpq will resolve it."""
    user = params.get("user") or os.environ.get("PGUSER") or _login()
    host = params.get("host") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or user
    return f"{user}@{host}:{port}/{dbname}"


def _login() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (ImportError, KeyError, OSError):
        return "?"


# libpq reports a refused connection without a SQLSTATE: the server's FATAL text
# tells which one it is.
_CONNECT_STATES = (
    ("does not exist", "database", "3D000"),
    ("does not exist", "role", "28000"),
    ("password authentication failed", "", "28P01"),
    ("is starting up", "", "57P03"),
    ("is shutting down", "", "57P03"),
    ("is in recovery mode", "", "57P03"),
    ("too many clients", "", "53300"),
    ("remaining connection slots", "", "53300"),
)


def sqlstate(error: psycopg.Error) -> str:
    """The error's SQLSTATE, inferred from the message for failed connections."""
    if error.sqlstate:
        return error.sqlstate
    text = str(error)
    for phrase, also, state in _CONNECT_STATES:
        if phrase in text and also in text:
            return state
    return ""


def explain(error: psycopg.Error, params: dict[str, str]) -> tuple[str, bool]:
    """A one-line account of a failed connection, and whether trying again may help."""
    where = describe(params)
    user, rest = where.split("@", 1)
    server, dbname = rest.split("/", 1)
    text = " ".join(str(error).split())
    text = text.removeprefix("connection failed: ")
    state = sqlstate(error)
    if state == "3D000":
        return (
            f"database {dbname!r} does not exist on the PostgreSQL server at {server}: "
            f"create it (createdb -h {server.rsplit(':', 1)[0]} -p "
            f"{server.rsplit(':', 1)[1]} -U {user} {dbname}), then run "
            "`cairn db migrate`",
            False,
        )
    if state == "28P01" or "password authentication failed" in text:
        return f"PostgreSQL at {server} refused the password of user {user!r}", False
    if state.startswith("28") or "no pg_hba.conf entry" in text:
        return f"PostgreSQL at {server} refused user {user!r}: {text}", False
    if "no password supplied" in text:
        return (
            f"PostgreSQL at {server} asks for a password for user {user!r}, and the "
            "store URL gives none",
            False,
        )
    if "could not translate host name" in text or "Name or service not known" in text:
        return f"unknown PostgreSQL host in {where}: {text}", False
    if "invalid response" in text or "SSL negotiation" in text:
        return (
            f"something answered at {server}, but not as PostgreSQL does: {text}",
            False,
        )
    if "invalid" in text and state == "":
        return f"bad PostgreSQL connection settings for {where}: {text}", False
    if "timeout expired" in text:
        timeout = params.get("connect_timeout", str(CONNECT_TIMEOUT_S))
        return (
            f"PostgreSQL at {server} did not answer within {timeout}s "
            "(is the host reachable?)",
            True,
        )
    if "Connection refused" in text:
        return (
            f"cannot reach PostgreSQL at {server}: connection refused "
            "(is the server running and listening there?)",
            True,
        )
    return f"cannot use PostgreSQL at {where}: {text}", True


def _transient(error: psycopg.Error, conn: Connection | None) -> bool:
    """Whether the transaction may run again (it surely did not commit)."""
    if conn is not None and conn.broken:
        return True
    state = error.sqlstate
    if state is None:
        return isinstance(error, psycopg.OperationalError)
    return state in _TRANSIENT_STATES or state.startswith("08")


# -- schema ---------------------------------------------------------------------------------
def schema_version(conn: Connection, where: str) -> int:
    """The schema version (0 for an empty schema); refuses foreign databases."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c "
        "WHERE c.relnamespace = current_schema()::regnamespace "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
    ).fetchall()
    tables = {row[0] for row in rows}
    if "cairn_meta" not in tables:
        if tables:
            raise errors.StoreError(
                f"{where} is a PostgreSQL database but not a Cairn store (it has "
                f"tables {', '.join(sorted(tables)[:5])}); refusing to touch it"
            )
        return 0
    row = conn.execute(
        "SELECT value FROM cairn_meta WHERE key = 'schema_version'"
    ).fetchone()
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
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            version = schema_version(conn, where)
            for number, _name, script in _sql.migrations("postgres"):
                if number > version:
                    conn.execute(script)
                    conn.execute(
                        "INSERT INTO cairn_meta (key, value) "
                        "VALUES ('schema_version', %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (str(number),),
                    )
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
    row = conn.execute(
        "SELECT d.oid::bigint, COALESCE(to_regclass('calls')::oid::bigint, 0) "
        "FROM pg_database d "
        "WHERE d.datname = current_database()"
    ).fetchone()
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
        self._pool = Pool(self.conninfo)
        self._listener: Listener | None = None
        self._listeners: list[Listener] = []
        self._closed = False
        # A store dropped without close() still lets go of its connections, from
        # the thread that dropped it (never in a forked child: they are the parent's).
        self._release = weakref.finalize(
            self, _release, self._pool, self._listeners, os.getpid()
        )
        self.schema_before, self.identity = self._prepare()

    def _prepare(self) -> tuple[int, tuple[int, int]]:
        conn = self.connect()
        try:
            before = migrate(conn, self.where)
            found = identity(conn)
            conn.execute(Q["prune_commit_marks"])
        except psycopg.Error as error:
            conn.close()
            raise errors.StoreError(
                f"cannot check the schema of {self.where}: {' '.join(str(error).split())}"
            ) from None
        except BaseException:
            conn.close()
            raise
        self._pool.put(conn)  # the first connection of the store
        return before, found

    def connect(self) -> Connection:
        """A new autocommit connection, or one clear StoreError."""
        try:
            return psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as error:
            message, _transient_error = explain(error, self.params)
            raise errors.StoreError(message) from None

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
        notify: bool | Callable[[T], bool] = True,
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
        one is read (a checkpoint waits for three answers instead of five). A
        statement's error then surfaces at the next read, not at its
        ``execute``: only for bodies that catch no database error themselves.
        """
        return self._retrying(lambda: self._write_once(body, notify, pipelined))

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection for a streaming read (no retry once rows flowed)."""
        with self._checkout() as conn:
            yield conn

    def _retrying(self, once: Callable[[], T]) -> T:
        deadline: float | None = None
        delay = _BACKOFF_FIRST_S
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
                delay = min(delay * 2, _BACKOFF_MAX_S)
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
                if _transient(error, conn):
                    raise _Retry(error) from None
                raise self._failed(error) from None

    def _write_once(
        self,
        body: Callable[[Connection], T],
        notify: bool | Callable[[T], bool],
        pipelined: bool,
    ) -> T:
        with self._checkout() as conn:
            slot = self._pool.slot(conn)
            mark: int | None = None
            committing = False
            try:
                with (
                    conn.pipeline() if pipelined else nullcontext(),
                    conn.transaction(),
                ):
                    result = body(conn)
                    if callable(notify):
                        notify = notify(result)
                    row = conn.execute(
                        Q["end_transaction"],
                        {
                            "slot": slot,
                            "mark": next(_marks),
                            "notify": notify,
                            "channel": CHANNEL,
                            "origin": self.origin,
                        },
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
                elif _transient(error, conn):
                    raise _Retry(error) from None
                else:
                    raise self._failed(error) from None
        if mark is not None and notify:
            with _local_lock:
                _local_commits[self.key] = _local_commits.get(self.key, 0) + 1
        return result

    def committed(self, slot: str, mark: int, lost: psycopg.Error) -> bool:
        """Whether the transaction that stamped ``mark`` on ``slot`` committed.

        Asked on a new connection when the answer to its COMMIT was lost. A
        transaction of that connection still committing holds the slot's row lock,
        so the question waits for it to end; one that never committed left the
        slot's previous mark (or none: the slot is then marked, so that it cannot
        commit later).
        """
        deadline = time.monotonic() + self.retry_s
        delay = _BACKOFF_FIRST_S
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
                delay = min(delay * 2, _BACKOFF_MAX_S)
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
        return errors.StoreError(f"{self.where} failed a query{state}: {detail}")

    # -- wake-ups ---------------------------------------------------------------------------
    def change_count(self) -> int | None:
        """Commits seen (this process's and notified ones); None while not listening."""
        if self._listener is None:
            self._listener = Listener(self.conninfo, self.origin, self.where)
            self._listeners.append(self._listener)
            self._listener.wait_listening(float(self.params["connect_timeout"]))
        heard = self._listener.heard()
        if heard is None:
            return None
        return heard + _local_commits.get(self.key, 0)


def _release(pool: Pool, listeners: list[Listener], owner_pid: int) -> None:
    if os.getpid() != owner_pid:
        return
    for listener in listeners:
        listener.stop()
    pool.close()


class Pool:
    """Connections kept open for reuse, made on demand in the caller's thread.

    A store is used by one thread at a time (a streaming read may hold a second
    connection), so this needs no background threads, unlike psycopg_pool's pools:
    none to fork over, and an executor keeps its few threads. A connection that
    broke is dropped when it comes back; the next one is made fresh.
    """

    def __init__(self, conninfo: str, keep: int = 2) -> None:
        self._conninfo = conninfo
        self._keep = keep
        self._idle: list[Connection] = []
        self._slots: weakref.WeakKeyDictionary[Connection, str] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> Connection:
        """An idle connection, or a new one (psycopg.Error if it cannot connect)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            return conn
        return psycopg.connect(self._conninfo, autocommit=True)

    def slot(self, conn: Connection) -> str:
        """The connection's own row of ``commit_marks``: no other ever stamps it."""
        with self._lock:
            slot = self._slots.get(conn)
            if slot is None:
                slot = self._slots[conn] = secrets.token_hex(12)
        return slot

    def put(self, conn: Connection) -> None:
        """Take a connection back, or close it if it is unusable or one too many."""
        reusable = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        if reusable:
            with self._lock:
                if not self._closed and len(self._idle) < self._keep:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._closed = True
        for conn in idle:
            conn.close()


class Listener:
    """A ``LISTEN`` connection drained by a daemon thread.

    Draining all the time matters: a listener whose socket fills up stops
    PostgreSQL's notification queue from advancing for every session.
    """

    def __init__(self, conninfo: str, origin: str, where: str) -> None:
        self._conninfo = conninfo
        self._origin = origin
        self._where = where
        self._count = 0
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="cairn-pg-listener", daemon=True
        )
        self._thread.start()

    def heard(self) -> int | None:
        """Notifications from other processes so far, or None while disconnected."""
        return self._count if self._listening.is_set() else None

    def wait_listening(self, timeout_s: float) -> bool:
        """Wait until the first LISTEN is in place."""
        return self._listening.wait(timeout_s)

    def stop(self) -> None:
        """Ask the thread to close its connection and end (within a poll period)."""
        self._stopping.set()

    def _run(self) -> None:
        delay = _BACKOFF_FIRST_S
        warned = False
        while not self._stopping.is_set():
            try:
                conn = psycopg.connect(self._conninfo, autocommit=True)
            except psycopg.Error as error:
                if not warned:
                    logger.warning(
                        "cannot listen for changes on %s (%s); retrying",
                        self._where,
                        " ".join(str(error).split()),
                        extra={"action": "store_listen_retry"},
                    )
                    warned = True
                self._stopping.wait(delay)
                delay = min(delay * 2, _BACKOFF_MAX_S * 2)
                continue
            try:
                self._drain(conn)
            except psycopg.Error as error:
                if not self._stopping.is_set():
                    logger.warning(
                        "lost the listening connection to %s (%s); reconnecting",
                        self._where,
                        " ".join(str(error).split()),
                        extra={"action": "store_listen_retry"},
                    )
                    warned = True
            finally:
                self._listening.clear()
                self._count += 1  # whatever was missed meanwhile counts as a change
                conn.close()
            delay = _BACKOFF_FIRST_S

    def _drain(self, conn: Connection) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        self._count += 1
        self._listening.set()
        while not self._stopping.is_set():
            for note in conn.notifies(timeout=_LISTEN_POLL_S):
                if note.payload != self._origin:
                    self._count += 1
