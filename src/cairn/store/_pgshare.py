"""What the PostgreSQL stores of a process, and of the processes it forks, share.

A process opens several stores on one database (an engine's; the one each thread
keeps for the public API, ``_store_cache``; an executor's and its flusher's), and
PostgreSQL counts every connection against ``max_connections`` (100 by default,
for all the clients of a server). So, per database:

- a process's stores draw from one pool: a connection is made when stores are
  busy at once, so that stores used one after another (by one thread) use one;
- a process tree listens once: a process forked after its parent started to
  listen (an executor, from its supervisor) reads the count of changes the
  parent's listener keeps in shared memory, instead of opening a ``LISTEN``
  connection of its own. It listens itself only once the parent has stopped.
"""

from __future__ import annotations

import os
import threading

from ._pglink import Changes, Listener, Pool


class Link:
    """One process's connections to one database: a pool, and the count of changes."""

    def __init__(
        self, key: str, conninfo: str, origin: str, where: str, parent: Link | None
    ) -> None:
        self.key = key
        self.pool = Pool(conninfo)
        self.pid = os.getpid()
        self.refs = 0
        self._conninfo = conninfo
        self._origin = origin
        self._where = where
        # The link this process inherited from its parent: read, never used (its
        # connections are the parent's), and kept so that they are not closed here.
        self.parent = parent
        self._inherited = parent.changes() if parent is not None else None
        self._listener: Listener | None = None
        self._local = 0  # this process's commits that notified
        self._local_queue = 0  # of which, those that may have made work due
        self._lock = threading.Lock()

    def changes(self) -> Changes | None:
        """The count a process forked now may read."""
        listener = self._listener
        return listener.changes if listener is not None else self._inherited

    def committed(self, *, queue: bool) -> None:
        """Count a commit of this process that notified (``queue``: not as progress
        only): a listener skips its own process's notifications, which its stores
        (and children) see at once."""
        with self._lock:
            self._local += 1
            self._local_queue += queue
            if self._listener is not None:
                self._listener.changes.add_local(queue=queue)

    def change_count(self, timeout_s: float, *, queue: bool = False) -> int | None:
        """Commits seen (this process's and notified ones; ``queue``: those not
        notified as progress only); None while not listening."""
        inherited = self._inherited
        if self._listener is None and inherited is not None:
            if not inherited.stopped():
                count = inherited.count(queue=queue)
                local = self._local_queue if queue else self._local
                return None if count is None else count + local
        with self._lock:
            started = self._listener is None
            if started:
                self._listener = Listener(
                    self._conninfo, self._origin, self._where, Changes()
                )
            listener = self._listener
        assert listener is not None
        if started:
            listener.wait_listening(timeout_s)
        return listener.changes.count(queue=queue)

    def close(self) -> None:
        """Stop listening and close the idle connections."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        self.pool.close()


_links: dict[str, Link] = {}
_lock = threading.Lock()


def acquire(key: str, conninfo: str, origin: str, where: str) -> Link:
    """This process's link to the database ``key`` names, for one more store."""
    with _lock:
        link = _links.get(key)
        if link is None or link.pid != os.getpid():
            link = _links[key] = Link(key, conninfo, origin, where, parent=link)
        link.refs += 1
        # A connection for each store busy at once, and one for a streaming read.
        link.pool.keep = link.refs + 1
    return link


def release(link: Link) -> None:
    """A store is done with ``link``: the last one closes it."""
    if link.pid != os.getpid():
        return  # a forked child's copy: the connections are its parent's
    with _lock:
        link.refs -= 1
        link.pool.keep = link.refs + 1
        if link.refs > 0:
            return
        if _links.get(link.key) is link:
            if link.parent is not None:
                _links[link.key] = link.parent
            else:
                del _links[link.key]
    link.close()


def _after_fork_in_child() -> None:
    # Another thread may have held the lock when the process forked.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
