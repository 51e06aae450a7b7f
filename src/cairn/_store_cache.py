"""One open store per thread, kept between the calls of the public API.

``run_local_application(...).output()`` used to open the store three times
(submit, wait, output), and opening one costs a connection and a schema check:
about 5 ms on PostgreSQL, which made a 3-call request cost 30 ms there. A thread
keeps the store it used last and takes it again for the same URL; a store is not
thread-safe, so each thread has its own, and a nested use (the store is out on
loan) opens another. One per thread, so that a process walking many stores (a
test suite) does not keep them all open.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator

from cairn import errors
from cairn.store import KeptStore, Store, open_store

_kept: dict[tuple[int, int], KeptStore] = {}
_lock = threading.Lock()


@contextlib.contextmanager
def borrowed(url: str) -> Iterator[Store]:
    """The thread's store on ``url`` (opened if needed), given back after use."""
    slot = (os.getpid(), threading.get_ident())
    with _lock:
        kept = _kept.pop(slot, None)
    if kept is not None and kept.store.url != url:
        kept.store.close()
        kept = None
    if kept is not None:
        try:
            kept.check()  # the file or database may have been replaced meanwhile
        except errors.CairnError:
            kept.store.close()
            kept = None
    kept = kept or KeptStore(open_store(url))
    try:
        yield kept.store
    except BaseException:
        kept.store.close()  # it may be broken; the next use opens a fresh one
        raise
    with _lock:
        previous = _kept.pop(slot, None)
        _kept[slot] = kept
    if previous is not None:
        previous.store.close()


@atexit.register
def _close_all() -> None:
    with _lock:
        mine = [key for key in _kept if key[0] == os.getpid()]
        kept_stores = [_kept.pop(key) for key in mine]
    for kept in kept_stores:
        kept.store.close()
