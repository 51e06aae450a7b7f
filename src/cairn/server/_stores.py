"""Store access from the event loop: one store per worker thread, and a change watcher.

Store objects are not thread-safe (a SQLite connection serves one thread at a
time), and their calls block. Routes therefore run store work in anyio's worker
threads, each piece of work with a store of a small pool, which it alone uses
meanwhile; the stores are opened on first use and closed when the app stops. Event streams do not poll the store one by one: one watcher polls the
store's cheap ``change_token()`` while anyone listens, and wakes every stream when
another connection committed.

A store whose file was deleted or replaced (or whose database was dropped) is
reopened on the store at its URL now, as the embedded worker does: otherwise the
API would go on reading the old file while new requests go into the new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

from cairn import errors
from cairn.store import KeptStore, Store, open_store, redact_url

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Stores (connections) of a server's pool, and so store calls running at once.
_POOL_SIZE = 8
# How often the watcher asks whether anything was committed. A progress update
# reaches a stream within about this long plus one events query.
_WATCH_EVERY_S = 0.01


def _still_current(opened: KeptStore) -> bool:
    """Whether ``opened`` is still the store at its URL (closed if not)."""
    try:
        opened.check()
    except errors.StoreReplaced as error:
        _forget(opened, error)
        return False
    return True


def _forget(opened: KeptStore, error: errors.StoreReplaced) -> None:
    logger.warning(
        "store %s: %s; reopening it",
        redact_url(opened.store.url),
        error,
        extra={"action": "store_reopened"},
    )
    opened.store.close()


class StorePool:
    """At most ``size`` stores, each used by one worker thread at a time.

    Store objects are not thread-safe, but one may move between threads as long
    as only one uses it at a time: a store is taken from the pool for one piece
    of work and put back after. The pool bounds the connections a server holds
    (PostgreSQL counts them) and the threads busy with store work.
    """

    def __init__(self, url: str, size: int = _POOL_SIZE) -> None:
        self.url = url
        self._slots = asyncio.Semaphore(size)
        self._idle: list[KeptStore] = []
        self._closed = False

    async def run(self, work: Callable[[Store], T]) -> T:
        """Run ``work(store)`` in a worker thread with a store of the pool."""
        async with self._slots:
            held: list[KeptStore] = self._idle[-1:]
            del self._idle[-1:]
            try:
                return await anyio.to_thread.run_sync(self._with_store, held, work)
            finally:
                for opened in held:
                    if self._closed:
                        opened.store.close()
                    else:
                        self._idle.append(opened)

    def _with_store(self, held: list[KeptStore], work: Callable[[Store], T]) -> T:
        # ``held`` is what goes back to the pool: a replaced store leaves it.
        if held and not _still_current(held[0]):
            held.clear()
        retried = False
        while True:
            if not held:
                held.append(KeptStore(open_store(self.url)))
            try:
                return work(held[0].store)
            except errors.StoreReplaced as error:
                # Found on use (a dropped database), before the work wrote
                # anything: once more, on the store at the URL now.
                _forget(held.pop(), error)
                if retried:
                    raise errors.StoreError(str(error)) from error
                retried = True

    def close(self) -> None:
        """Close the idle stores; those in use are closed when their work ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for opened in idle:
            opened.store.close()


class ChangeWatcher:
    """Wakes waiting event streams when the store changed."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._changed = asyncio.Event()
        self._listeners = 0
        self._task: asyncio.Task[None] | None = None
        self._opened: KeptStore | None = None
        self._opens = 0
        self._stopping = False

    @property
    def stopping(self) -> bool:
        """Whether the server is stopping (streams should end)."""
        return self._stopping

    def snapshot(self) -> asyncio.Event:
        """The event set at the next change; take it *before* reading the store."""
        return self._changed

    def subscribe(self) -> None:
        """Count a listener; start watching if it is the first."""
        self._listeners += 1
        if self._task is None and not self._stopping:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def unsubscribe(self) -> None:
        """Uncount a listener (the watcher stops by itself when none is left)."""
        self._listeners -= 1

    async def _watch(self) -> None:
        token: tuple[int, int] | None = None
        try:
            while self._listeners > 0 and not self._stopping:
                current = await anyio.to_thread.run_sync(self._token)
                if current != token:
                    token = current
                    self._wake()
                await asyncio.sleep(_WATCH_EVERY_S)
        finally:
            self._task = None

    def _token(self) -> tuple[int, int]:
        # One store, used by one watcher task at a time, in whichever thread. A
        # deleted file's token never changes again: follow the store at the URL,
        # and count the stores opened, since a new one's token means nothing yet.
        if self._opened is not None and not _still_current(self._opened):
            self._opened = None
        if self._opened is None:
            self._opened = KeptStore(open_store(self.url))
            self._opens += 1
        return self._opens, self._opened.store.change_token()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def close(self) -> None:
        """Stop watching and wake every stream so that it can end."""
        self._stopping = True
        task = self._task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._wake()
        if self._opened is not None:
            self._opened.store.close()
            self._opened = None
