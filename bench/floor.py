"""The floor: a deliberately minimal durable decorator, for comparison with Cairn.

Each call runs the function, pickles its result and commits one INSERT into a
SQLite file in WAL mode, at the same ``synchronous`` setting as the Cairn store
it is compared with. Nothing else: no lookup of an earlier checkpoint, no call
ids, no arguments stored, no retries, no events, no process boundary. Whatever
Cairn spends per call above this is the price of its features, not of SQLite.
"""

from __future__ import annotations

import functools
import pickle
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_SYNCHRONOUS = {"off", "normal", "full", "extra"}


class FloorStore:
    """One SQLite file of checkpoints, one row per call."""

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

    def durable(self, fn: Callable[..., T]) -> Callable[..., T]:
        """Wrap ``fn``: every call commits its pickled result before returning it."""
        conn = self.conn

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            result = fn(*args, **kwargs)
            conn.execute(
                "INSERT INTO checkpoints (output) VALUES (?)",
                (pickle.dumps(result, pickle.HIGHEST_PROTOCOL),),
            )
            conn.commit()
            return result

        return wrapper

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()
