"""The floor: a deliberately minimal durable decorator, for comparison with Cairn.

Each call runs the function, pickles its result and commits one INSERT, at the
same durability setting as the store it is compared with: a SQLite file in WAL
mode at the same ``synchronous``, or a PostgreSQL database (one INSERT and COMMIT
over one connection). Nothing else: no lookup of an earlier checkpoint, no call
ids, no arguments stored, no retries, no events, no process boundary. Whatever an
engine spends per call above this is the price of its features, not of the
database. ``replay`` is the matching minimum for a replay: read each checkpoint
back by its id and unpickle it.

Standard library only for SQLite (psycopg for PostgreSQL), so any interpreter can
run it.
"""

from __future__ import annotations

import functools
import pickle
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_SYNCHRONOUS = {"off", "normal", "full", "extra"}


class _Floor:
    """One table of checkpoints, one row per call; ``_ph`` is the driver's placeholder."""

    conn: Any
    _ph: str

    def durable(self, fn: Callable[..., T]) -> Callable[..., T]:
        """Wrap ``fn``: every call commits its pickled result before returning it."""
        conn = self.conn
        insert = f"INSERT INTO checkpoints (output) VALUES ({self._ph})"

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            result = fn(*args, **kwargs)
            conn.execute(insert, (pickle.dumps(result, pickle.HIGHEST_PROTOCOL),))
            conn.commit()
            return result

        return wrapper

    def replay(self, first_id: int, count: int) -> list[Any]:
        """Read ``count`` checkpoints back, one lookup by id each, and unpickle them."""
        conn = self.conn
        select = f"SELECT output FROM checkpoints WHERE id = {self._ph}"
        out = []
        for checkpoint_id in range(first_id, first_id + count):
            row = conn.execute(select, (checkpoint_id,)).fetchone()
            out.append(pickle.loads(row[0]))
        conn.commit()  # ends PostgreSQL's read transaction; a no-op on SQLite
        return out

    def last_id(self) -> int:
        """The id of the latest checkpoint (0 when none)."""
        row = self.conn.execute("SELECT coalesce(max(id), 0) FROM checkpoints")
        value = int(row.fetchone()[0])
        self.conn.commit()
        return value

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class FloorStore(_Floor):
    """One SQLite file in WAL mode at the given ``synchronous``."""

    _ph = "?"

    def __init__(self, path: str, synchronous: str = "full") -> None:
        if synchronous.lower() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS)}")
        self.conn = sqlite3.connect(path)
        mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"cannot put {path} in WAL mode ({mode})")
        self.conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints "
            "(id INTEGER PRIMARY KEY, output BLOB NOT NULL)"
        )
        self.conn.commit()


class PgFloorStore(_Floor):
    """The same on PostgreSQL over one psycopg 3 connection."""

    _ph = "%s"

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints "
            "(id BIGSERIAL PRIMARY KEY, output BYTEA NOT NULL)"
        )
        self.conn.commit()
