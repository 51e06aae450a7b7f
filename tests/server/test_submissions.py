"""Invokes written together: the group commit behind ``POST /applications/{app}``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from cairn import errors
from cairn.server import _stores, _submissions
from cairn.store import Store
from tests.contract.test_store import submission


class Counted:
    """Records the size of each batch the store is asked to write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store_class: type) -> None:
        self.batches: list[int] = []
        real = store_class.create_requests

        def create_requests(
            store: Store, batch: Sequence[_submissions.Submission]
        ) -> list[bool]:
            self.batches.append(len(batch))
            return real(store, batch)  # type: ignore[no-any-return]

        monkeypatch.setattr(store_class, "create_requests", create_requests)


async def test_concurrent_invokes_share_commits(store_url, store, monkeypatch):
    counted = Counted(monkeypatch, type(store))
    pool = _stores.StorePool(store_url)
    submissions = _submissions.Submissions(pool)
    try:
        created = await asyncio.gather(
            *(submissions.create(submission(f"r{i}")) for i in range(200))
        )
        again = await submissions.create(submission("r7"))  # a taken id
    finally:
        pool.close()
    assert created == [True] * 200 and again is False
    assert sum(counted.batches) == 201
    # 200 invokes at once cost one commit (the last, alone, another), not 200.
    assert counted.batches == [200, 1]
    for i in (0, 199):
        record = store.get_request(f"r{i}")
        assert record is not None and record.application == "app"


async def test_a_failed_commit_answers_every_invoke_of_its_batch(
    store_url, store, monkeypatch
):
    def refuse(store: Store, batch: Sequence[_submissions.Submission]) -> list[bool]:
        raise errors.StoreError("the disk is full")

    monkeypatch.setattr(type(store), "create_requests", refuse)
    pool = _stores.StorePool(store_url)
    submissions = _submissions.Submissions(pool)
    try:
        answers = await asyncio.gather(
            *(submissions.create(submission(f"r{i}")) for i in range(20)),
            return_exceptions=True,
        )
        monkeypatch.undo()
        assert await submissions.create(submission("after")) is True
    finally:
        pool.close()
    assert all(isinstance(answer, errors.StoreError) for answer in answers)
    assert store.get_request("r0") is None
