"""New requests written to the store together: a group commit for invokes.

One insert per invoke, each its own transaction, made 200 concurrent clients wait
seconds: every commit waits for the store's write lock and (on SQLite at
``synchronous=FULL``) its own fsync, behind the workers' checkpoints. Here the
invokes that arrive while one transaction is being written go into the next one,
so a burst costs a few commits, not one each. Nothing waits on purpose: a lone
invoke is written at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence

from cairn.store import CallKey, NewRequest, Store

from ._stores import StorePool

Submission = tuple[NewRequest, CallKey, bytes]

# Submissions in one transaction at most: a bound on how long one commit holds the
# store's write lock.
_MAX_BATCH = 256


class Submissions:
    """Creates requests in batches, one writer at a time."""

    def __init__(self, pool: StorePool) -> None:
        self._pool = pool
        self._waiting: list[tuple[Submission, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def create(self, submission: Submission) -> bool:
        """Create the request; False when its id is taken (it is left as it was)."""
        created: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((submission, created))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        return await created

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:_MAX_BATCH]
                del self._waiting[:_MAX_BATCH]
                submissions = [submission for submission, _ in batch]
                try:
                    created = await self._pool.run(
                        functools.partial(_create, submissions=submissions)
                    )
                except Exception as error:  # every invoke of the batch answers it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), was_created in zip(batch, created, strict=True):
                    if not future.done():
                        future.set_result(was_created)
        finally:
            self._writer = None
            # Cancelled (the server stops): no invoke is left waiting for ever.
            for _, future in self._waiting:
                future.cancel()
            self._waiting.clear()


def _create(store: Store, submissions: Sequence[Submission]) -> list[bool]:
    return store.create_requests(submissions)
