"""Reaching a PostgreSQL server: URLs with Cairn's defaults, connection errors
explained in one line, the connection pool, and the LISTEN thread with the count
of changes it keeps."""

from __future__ import annotations

import logging
import mmap
import os
import secrets
import struct
import threading
import time
import urllib.parse
import weakref
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from cairn import errors

from ._dialect import PROGRESS
from ._urls import redact, timeout_option

logger = logging.getLogger("cairn.store.postgres")

Connection = psycopg.Connection[Any]

# Default libpq connect_timeout (seconds) unless the URL sets one.
CONNECT_TIMEOUT_S = 5
# How long an operation keeps trying to reach a server that went away (a restart,
# a failover) before it gives up with a StoreError (``?timeout=SECONDS``). Past
# that, the engine takes over: executors stop and their calls run again later.
RETRY_FOR_S = 30.0
BACKOFF_FIRST_S = 0.05
BACKOFF_MAX_S = 2.0
# The listener wakes this often to notice that its store was closed.
_LISTEN_POLL_S = 0.5
# A pooled connection left idle this long beside the one in use is closed.
_SURPLUS_IDLE_S = 30.0
CHANNEL = "cairn_changes"
# Error classes after which the same transaction may simply run again.
_TRANSIENT_STATES = {"40001", "40P01", "55P03", "57P01", "57P02", "57P03", "53300"}


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


def transient(error: psycopg.Error, conn: Connection | None) -> bool:
    """Whether the transaction may run again (it surely did not commit)."""
    if conn is not None and conn.broken:
        return True
    state = error.sqlstate
    if state is None:
        return isinstance(error, psycopg.OperationalError)
    return state in _TRANSIENT_STATES or state.startswith("08")


class Pool:
    """Connections kept open for reuse, made on demand in the caller's thread.

    A process's stores on one database share one (``_pgshare``). A store is used
    by one thread at a time (a streaming read may hold a second connection), so a
    connection is made when stores are busy at once, and this needs no background
    threads, unlike psycopg_pool's pools: none to fork over, and an executor keeps
    its few threads. The connection used last is used next; one left idle for
    ``_SURPLUS_IDLE_S`` beside it is closed. A connection that broke is dropped
    when it comes back; the next one is made fresh.
    """

    def __init__(self, conninfo: str, keep: int = 2) -> None:
        self._conninfo = conninfo
        self.keep = keep  # idle connections kept at most
        self._idle: list[Connection] = []  # the one used last at the end
        self._idle_since: list[float] = []
        self._slots: weakref.WeakKeyDictionary[Connection, str] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> Connection:
        """An idle connection, or a new one (psycopg.Error if it cannot connect)."""
        conn = self.idle()
        if conn is not None:
            return conn
        return psycopg.connect(self._conninfo, autocommit=True)

    def idle(self) -> Connection | None:
        """An idle connection, if there is one."""
        with self._lock:
            if not self._idle:
                return None
            self._idle_since.pop()
            return self._idle.pop()

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
        closing = [conn]
        if reusable:
            now = time.monotonic()
            with self._lock:
                if not self._closed and len(self._idle) < self.keep:
                    self._idle.append(conn)
                    self._idle_since.append(now)
                    closing.clear()
                # Stores busy at once left these: unused since, they need not stay.
                while self._idle and now - self._idle_since[0] > _SURPLUS_IDLE_S:
                    self._idle_since.pop(0)
                    closing.append(self._idle.pop(0))
        for unused in closing:
            unused.close()

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._idle_since = []
            self._closed = True
        for conn in idle:
            conn.close()


# state; notifications heard; the owner's commits; the same two for commits that
# were not progress only (that may have made work due)
_COUNTS = struct.Struct("<qqqqq")
_CONNECTING, _LISTENING, _STOPPED = 0, 1, 2
_HEARD, _LOCAL, _QUEUE_HEARD, _QUEUE_LOCAL = 8, 16, 24, 32


class Changes:
    """Commits seen on one database, counted in an anonymous shared mapping, so
    that processes forked from the one listening read the count (``_pgshare``).

    One writer per field: the listener thread writes the state and what it heard;
    the listening process adds its own commits, which the listener skips. Commits
    notified as progress only are counted apart: idle workers look for due work
    only when the other count moves.
    """

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _COUNTS.size)

    def count(self, *, queue: bool = False) -> int | None:
        """Commits so far (``queue``: those not progress only), or None while not
        listening (a change may be missed)."""
        state, heard, local, queue_heard, queue_local = _COUNTS.unpack_from(self._map)
        if state != _LISTENING:
            return None
        return int(queue_heard + queue_local if queue else heard + local)

    def stopped(self) -> bool:
        """Whether the listener stopped for good (its process closed its stores)."""
        return bool(_COUNTS.unpack_from(self._map)[0] == _STOPPED)

    def set_state(self, state: int) -> None:
        struct.pack_into("<q", self._map, 0, state)

    def add_heard(self, *, queue: bool = True) -> None:
        self._add(_HEARD)
        if queue:
            self._add(_QUEUE_HEARD)

    def add_local(self, *, queue: bool) -> None:
        self._add(_LOCAL)
        if queue:
            self._add(_QUEUE_LOCAL)

    def _add(self, offset: int) -> None:
        value = struct.unpack_from("<q", self._map, offset)[0]
        struct.pack_into("<q", self._map, offset, value + 1)


class Listener:
    """A ``LISTEN`` connection drained by a daemon thread.

    Draining all the time matters: a listener whose socket fills up stops
    PostgreSQL's notification queue from advancing for every session. What it
    hears from other processes is counted in ``changes``.
    """

    def __init__(
        self, conninfo: str, origin: str, where: str, changes: Changes
    ) -> None:
        self._conninfo = conninfo
        self._origin = origin
        self._where = where
        self.changes = changes
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="cairn-pg-listener", daemon=True
        )
        self._thread.start()

    def wait_listening(self, timeout_s: float) -> bool:
        """Wait until the first LISTEN is in place."""
        return self._listening.wait(timeout_s)

    def stop(self) -> None:
        """Ask the thread to close its connection and end (within a poll period)."""
        self._stopping.set()
        self.changes.set_state(_STOPPED)

    def _run(self) -> None:
        delay = BACKOFF_FIRST_S
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
                delay = min(delay * 2, BACKOFF_MAX_S * 2)
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
                if not self._stopping.is_set():
                    self.changes.set_state(_CONNECTING)
                self.changes.add_heard()  # what was missed meanwhile is a change
                conn.close()
            delay = BACKOFF_FIRST_S
        self.changes.set_state(_STOPPED)

    def _drain(self, conn: Connection) -> None:
        conn.execute(f"LISTEN {CHANNEL}")
        self.changes.add_heard()
        if not self._stopping.is_set():
            self.changes.set_state(_LISTENING)
        self._listening.set()
        while not self._stopping.is_set():
            for note in conn.notifies(timeout=_LISTEN_POLL_S):
                origin, _, kind = note.payload.partition(" ")
                if origin != self._origin:
                    self.changes.add_heard(queue=kind != PROGRESS)
