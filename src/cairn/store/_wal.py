"""WAL checkpoints off the commit path, where commits do not fsync.

SQLite's auto-checkpoint runs inside the commit that takes the WAL past its
threshold: that commit copies the WAL's pages back into the database and fsyncs it
while the caller waits. At ``synchronous=NORMAL`` (and OFF), where a commit itself
waits for no disk, that was a third of an average checkpoint's COMMIT. There a
thread of the writing process checkpoints instead, every
``CHECKPOINT_EVERY_COMMITS`` commits of the process, in PASSIVE mode, so that
writers of every process go on meanwhile.

The writer's own auto-checkpoint stays, at ``AUTOCHECKPOINT_PAGES``: a PASSIVE
checkpoint beside a busy writer rarely catches up with it, and only a complete
checkpoint lets the next write start the WAL over from its beginning. That backstop
then finds little left to copy, and it alone checkpoints for a process that commits
too rarely to wake a thread.

At FULL and EXTRA SQLite's own scheme stays (1,000 pages, in the commit): there
every commit fsyncs the WAL, and a WAL that grows past 1,000 pages makes those
fsyncs write the file's new size too, while a checkpoint's fsyncs beside them
delay them (measured: a 1,000-call request 0.275 -> 0.35 ms per call).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import urllib.parse
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_EVERY_COMMITS = 500
AUTOCHECKPOINT_PAGES = 8000
# How long closing the last store of a file waits for a checkpoint under way.
_JOIN_TIMEOUT_S = 5.0


class Checkpointer:
    """The checkpoint thread of one store file in this process (started on the
    first checkpoint due), shared by the process's connections to that file."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self.users = 0
        self._pid = os.getpid()
        self._commits = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """A connection of this process committed a write to the file."""
        self._commits += 1
        if self._commits < CHECKPOINT_EVERY_COMMITS:
            return
        self._commits = 0
        if os.getpid() != self._pid:
            return  # inherited by fork: the thread is the parent's
        with _lock:  # two connections of the process may commit at once
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"cairn-wal-checkpoint {self.path.name}"
                )
                self._thread.daemon = True
                self._thread.start()
        self._due.set()

    def _run(self) -> None:
        # mode=rw: a file deleted meanwhile is not created anew by the checkpoint.
        uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=rw"
        try:
            conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as error:
            logger.warning(
                "store %s: cannot open it to checkpoint: %s", self.path, error
            )
            return
        try:
            # A checkpoint fsyncs as its connection's setting says: the store's.
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:
                    # A full disk, say: the writers' own checkpoints report it.
                    logger.debug("store %s: checkpoint failed: %s", self.path, error)
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the thread, waiting for a checkpoint under way."""
        self._stopping = True
        self._due.set()
        if self._thread is not None and os.getpid() == self._pid:
            self._thread.join(_JOIN_TIMEOUT_S)


def checkpoints_aside(synchronous: str) -> bool:
    """Whether a store file opened at this ``synchronous`` level uses a thread."""
    return synchronous in ("NORMAL", "OFF")


_lock = threading.Lock()
_checkpointers: dict[tuple[int, Path, str], Checkpointer] = {}


def acquire(path: Path, synchronous: str) -> Checkpointer:
    """The checkpointer of ``path`` in this process, for one more connection."""
    key = (os.getpid(), path, synchronous)
    with _lock:
        checkpointer = _checkpointers.get(key)
        if checkpointer is None:
            checkpointer = _checkpointers[key] = Checkpointer(path, synchronous)
        checkpointer.users += 1
    return checkpointer


def release(checkpointer: Checkpointer) -> None:
    """One connection fewer; the last one stops the thread."""
    with _lock:
        checkpointer.users -= 1
        if checkpointer.users > 0:
            return
        key = (checkpointer._pid, checkpointer.path, checkpointer.synchronous)
        if _checkpointers.get(key) is checkpointer:
            del _checkpointers[key]
    checkpointer.stop()
