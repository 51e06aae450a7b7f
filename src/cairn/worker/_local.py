"""The engine of this process's own requests (``run_local_application``, local
replays, ``cairn run``), behind ``local_engine``.

It is kept between runs, so that the next run on the same store does not start
its executor processes again; one at a time, so that tests and scripts that
switch stores do not pile up idle pools.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable

from cairn import errors
from cairn._execution import frames
from cairn.store import CallKey, NewRequest, RequestRecord, Store

from ._engine import Engine
from ._supervisor import default_concurrency

_kept: Engine | None = None


def local_engine(store_url: str) -> Engine:
    """This process's engine on ``store_url`` (made, or made anew when the
    store, ``CAIRN_CONCURRENCY`` or the process changed)."""
    global _kept
    if _kept is not None and (
        _kept.store_url != store_url
        or _kept.concurrency != default_concurrency()
        or not _kept.owned_by_this_process()
    ):
        _kept.close()
        _kept = None
    if _kept is None:
        _kept = Engine(store_url)
        atexit.register(_kept.close)
    return _kept


def close_local_engine(store_url: str | None = None) -> None:
    """Stop this process's engine (only if it is on ``store_url``, when given)."""
    global _kept
    if _kept is not None and store_url in (None, _kept.store_url):
        _kept.close()
        _kept = None


def _outside_calls() -> None:
    if frames.current_or_none() is not None:
        raise errors.SDKUsageError("cannot run a request from inside a function call")


def local_owner(store_url: str) -> str:
    """The id of this process's engine, started: a request it owns is run by it
    alone (and by no other process while it lives)."""
    _outside_calls()
    engine = local_engine(store_url)
    engine.start()  # alive in the store before it owns anything
    return engine.worker_id


def hand_off_here(
    store_url: str, store: Store, request: NewRequest, root: CallKey, args: bytes
) -> bool:
    """Create a request of this process's engine (``request.owner``, from
    ``local_owner``) with an idle executor already running it; False when none
    is idle (nothing was written)."""
    _outside_calls()
    return local_engine(store_url).hand_off(store, request, root, args)


def run_here(
    request_id: str,
    store_url: str,
    on_tick: Callable[[], None] | None = None,
    *,
    handed_off: bool = False,
) -> RequestRecord:
    """Run a request with this process's engine until it finishes
    (``handed_off``: ``hand_off_here`` started it)."""
    _outside_calls()
    engine = local_engine(store_url)
    try:
        return engine.run_until_finished(
            request_id, on_tick=on_tick, handed_off=handed_off
        )
    except BaseException:
        # Interrupted (Ctrl-C) or broken: stop the executors now, hand their calls back.
        close_local_engine()
        raise
