"""Opening a SQLite store file: its URL, its connection's pragmas, its schema
(migrated on opening), its write lock, and whether it is still the file at its path.

Writers take the lock up front (``BEGIN IMMEDIATE``) so that two processes never
both read, then both try to upgrade to a write lock and deadlock; readers are never
blocked in WAL mode.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cairn import errors

from . import _sql
from ._base import SCHEMA_VERSION
from ._urls import timeout_option

SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "extra": "EXTRA", "off": "OFF"}
# How long a writer waits for another process's transaction before giving up
# (``?timeout=SECONDS`` in the URL).
BUSY_TIMEOUT_S = 30.0


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
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
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
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT OR REPLACE INTO cairn_meta (key, value) "
                        "VALUES ('schema_version', ?)",
                        (str(number),),
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """The store's schema version (0 for an empty file); refuses foreign files."""
        try:
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'"
                )
            }
            if "cairn_meta" not in tables:
                if tables:
                    raise errors.StoreError(
                        f"{str(self.path)!r} is a SQLite database but not a Cairn store "
                        f"(it has tables {', '.join(sorted(tables)[:5])}); "
                        "refusing to touch it"
                    )
                return 0
            row = conn.execute(
                "SELECT value FROM cairn_meta WHERE key = 'schema_version'"
            ).fetchone()
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

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise errors.StoreError(
                f"store {str(self.path)!r} stayed locked for {self.busy_timeout_s:g}s: "
                f"{error}"
            ) from error
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

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


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
