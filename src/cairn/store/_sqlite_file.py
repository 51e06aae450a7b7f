"""Opening a SQLite store file: its URL, its connection's pragmas, its schema
(migrated on opening), its write lock, and whether it is still the file at its path.

Writers take the lock up front (``BEGIN IMMEDIATE``) so that two processes never
both read, then both try to upgrade to a write lock and deadlock; readers are never
blocked in WAL mode.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cairn import errors

from . import _sql, _wal
from ._base import SCHEMA_VERSION
from ._urls import timeout_option
from .errors import DuplicateKey, StoreRefused

SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "extra": "EXTRA", "off": "OFF"}
# How long a writer waits for another process's transaction before giving up
# (``?timeout=SECONDS`` in the URL).
BUSY_TIMEOUT_S = 30.0
# SQLite's primary result codes of a full disk and of a failing write.
# The end of a statement in a script: a semicolon that ends its line.
_END = re.compile(r";[ \t]*$", re.MULTILINE)
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
# After a full disk: how often the WAL checkpoint is tried, and how long it waits
# for readers (it holds the write lock meanwhile).
_SHRINK_EVERY_S = 1.0
_SHRINK_WAIT_MS = 200


@dataclass
class _Refused:
    """A store file whose disk refused a write of this process, until its WAL is
    checkpointed. Per process, not per connection: the connection that saw the
    failure is often closed (or its executor respawned) when writes succeed again."""

    tried_at: float = -math.inf
    """When the checkpoint was last tried."""
    while_full: bool = True
    """Whether that was while writes failed (the first write that succeeds then
    tries at once)."""


_refused: dict[Path, _Refused] = {}

Q = _sql.blocks("sqlite_file")

logger = logging.getLogger(__name__)


def parse_url(url: str) -> tuple[Path, dict[str, str]]:
    """Split ``sqlite:///relative.db`` / ``sqlite:////abs.db?synchronous=normal``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "sqlite":
        raise errors.StoreError(f"not a sqlite store URL: {url!r}")
    if parsed.netloc:
        raise errors.StoreError(
            f"bad sqlite store URL {url!r}: use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
    if not path:
        raise errors.StoreError(f"sqlite store URL {url!r} names no file")
    options = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
    for key, value in options.items():
        if key == "synchronous":
            if value.lower() not in SYNCHRONOUS:
                raise errors.StoreError(
                    f"bad synchronous={value!r} in store URL {url!r} "
                    f"(one of: {', '.join(SYNCHRONOUS)})"
                )
        elif key == "timeout":
            timeout_option(value, url, "seconds a writer waits for a lock")
        else:
            raise errors.StoreError(
                f"unknown option {key!r} in store URL {url!r} "
                "(known: synchronous, timeout)"
            )
    return Path(path), options


def default_url() -> str:
    """``.cairn/cairn.db`` under the working directory, unless CAIRN_STORE says otherwise."""
    return os.environ.get("CAIRN_STORE") or f"sqlite:///{Path('.cairn/cairn.db')}"


class StoreFile:
    """One SQLite file opened as a Cairn store, on one connection."""

    def __init__(self, url: str) -> None:
        self.path, options = parse_url(url)
        self.synchronous = SYNCHRONOUS[options.get("synchronous", "full").lower()]
        self.busy_timeout_s = float(options.get("timeout", BUSY_TIMEOUT_S))
        self.schema_before = 0
        """The schema version the file had when opened (0: opening created it)."""
        self.conn = self._connect()
        self._checkpointer = (
            _wal.acquire(self.path, self.synchronous)
            if _wal.checkpoints_aside(self.synchronous)
            else None
        )
        opened = self.path.stat()
        self._identity = (opened.st_dev, opened.st_ino)

    def _connect(self) -> sqlite3.Connection:
        if self.path.exists() and self.path.is_dir():
            raise errors.StoreError(f"store path {str(self.path)!r} is a directory")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self.busy_timeout_s,
        )
        try:
            # Whose file is it? Asked before anything is changed: a file that is not
            # a Cairn store is refused byte-for-byte untouched.
            self._schema_version(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            mode = self._wal_mode(conn)
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            if _wal.checkpoints_aside(self.synchronous):
                conn.execute(f"PRAGMA wal_autocheckpoint = {_wal.AUTOCHECKPOINT_PAGES}")
            if mode.lower() != "wal":
                raise errors.StoreError(
                    f"cannot put {str(self.path)!r} in WAL mode ({mode})"
                )
            self._migrate(conn)
        except sqlite3.DatabaseError as error:
            conn.close()
            raise errors.StoreError(
                f"{str(self.path)!r} is not a usable SQLite database: {error}"
            ) from error
        except BaseException:
            conn.close()
            raise
        return conn

    def _wal_mode(self, conn: sqlite3.Connection) -> str:
        """Put the file in WAL mode; the mode it is in after."""
        # Changing the journal mode needs the file to itself, and SQLite answers
        # "database is locked" at once, without its busy handler, while another
        # process opening the same new file holds it: wait as the busy timeout would.
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        # Checking the version takes no lock; only a store that needs migrating is
        # locked, so opening a store never waits on a busy worker.
        self.schema_before = self._schema_version(conn)
        if self.schema_before == SCHEMA_VERSION:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise errors.StoreError(
                f"store {str(self.path)!r} is locked: {error}"
            ) from error
        try:
            version = self.schema_before = self._schema_version(conn)
            for number, _name, script in _sql.migrations("sqlite"):
                if number > version:
                    for statement in statements(script):
                        conn.execute(statement)
                    conn.execute(Q["set_schema_version"], {"version": str(number)})
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """The store's schema version (0 for an empty file); refuses foreign files."""
        try:
            tables = {row[0] for row in conn.execute(Q["tables"])}
            if "cairn_meta" not in tables:
                if tables:
                    raise errors.StoreError(
                        f"{str(self.path)!r} is a SQLite database but not a Cairn store "
                        f"(it has tables {', '.join(sorted(tables)[:5])}); "
                        "refusing to touch it"
                    )
                return 0
            row = conn.execute(Q["schema_version"]).fetchone()
        except sqlite3.OperationalError as error:
            raise errors.StoreError(
                f"store {str(self.path)!r} is locked: {error}"
            ) from error
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise errors.StoreError(
                f"store {str(self.path)!r} has schema version {version}, newer than "
                f"this Cairn's {SCHEMA_VERSION}: upgrade Cairn to use it"
            )
        return version

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
        if self._checkpointer is not None:
            _wal.release(self._checkpointer)
            self._checkpointer = None

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if _unwritable(error):
                raise self._cannot_write(error) from error
            raise errors.StoreError(
                f"store {str(self.path)!r} stayed locked for {self.busy_timeout_s:g}s: "
                f"{error}"
            ) from error
        try:
            yield conn
            conn.execute("COMMIT")
            if self._checkpointer is not None:
                self._checkpointer.committed()
        except sqlite3.OperationalError as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _unwritable(error):
                raise self._cannot_write(error) from error
            raise
        except BaseException as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in str(error):
                raise DuplicateKey(f"store {str(self.path)!r}: {error}") from error
            if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
                # A constraint the write breaks, a value too big: for good.
                raise StoreRefused(f"store {str(self.path)!r}: {error}") from error
            raise
        if self.path in _refused:
            self._shrink_wal(full=False)

    def _cannot_write(self, error: sqlite3.OperationalError) -> errors.StoreError:
        """The error of a write the disk refused; the WAL is shrunk when it can be."""
        _refused.setdefault(self.path, _Refused())
        self._shrink_wal(full=True)
        return errors.StoreError(
            f"store {str(self.path)!r} cannot be written ({error}); "
            "it is writable again once its disk has room"
        )

    def _shrink_wal(self, *, full: bool) -> None:
        """Checkpoint the WAL into the database and truncate it, after a full disk.

        A WAL keeps its largest size (up to the auto-checkpoint's threshold):
        left alone after a full disk, it grows back into the space just freed.
        Tried by the first write that succeeds, then by later ones until it
        succeeds, and while writes fail (a checkpoint that frees space may make
        room), at most once a second; readers are waited for briefly, not for the
        busy timeout, since the checkpoint holds the write lock meanwhile.
        """
        now = time.monotonic()
        refused = _refused.get(self.path)
        if refused is None:
            return
        if now - refused.tried_at < _SHRINK_EVERY_S and (
            full or not refused.while_full
        ):
            return
        refused.tried_at, refused.while_full = now, full
        conn = self.conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {_SHRINK_WAIT_MS}")
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error as error:
            logger.warning("store %s: WAL checkpoint failed: %s", self.path, error)
            return
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        if not busy:
            _refused.pop(self.path, None)
            logger.warning(
                "store %s: its WAL was checkpointed and truncated after a full disk",
                self.path,
                extra={"action": "wal_truncated"},
            )

    def check(self) -> None:
        """The file this connection writes must still be the one at the path."""
        try:
            current = self.path.stat()
        except FileNotFoundError:
            raise errors.StoreReplaced(
                f"store file {str(self.path)!r} was deleted while in use"
            ) from None
        if (current.st_dev, current.st_ino) != self._identity:
            raise errors.StoreReplaced(
                f"store file {str(self.path)!r} was replaced while in use"
            )


def _unwritable(error: sqlite3.Error) -> bool:
    """A full disk (SQLITE_FULL) or one that fails writes (SQLITE_IOERR_*)."""
    code = getattr(error, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_FULL, _SQLITE_IOERR)


def statements(script: str) -> list[str]:
    """The statements of a script (or of a named query), without its comment lines:
    each ends with a ``;`` at the end of a line."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in _END.split("\n".join(lines)) if part.strip()]
