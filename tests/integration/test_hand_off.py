"""The local engine hands its own new request to an idle executor: the run
starts without a queue claim, and a hand-off to an executor that dies is
released and run again like any claimed call."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import pytest

from cairn import Retries, application, function, worker
from cairn.store import RequestRecord, _queue
from cairn.types import RequestStatus


@pytest.fixture
def no_queue_claims(monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """Executors forked from now on fail any claim from the queue."""
    worker.close_local_engine()

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("claimed from the queue")

    monkeypatch.setattr(_queue.QueueOps, "claim_call", refuse)
    yield
    worker.close_local_engine()


def test_a_local_request_runs_without_a_queue_claim(run, no_queue_claims):
    @function()
    def hand_off_double(x: int) -> int:
        return 2 * x

    @application()
    @function()
    def hand_off_sum(n: int) -> int:
        return sum(hand_off_double(i) for i in range(n))

    for n in (3, 4, 5):  # every request of the run, not only the first
        assert run(hand_off_sum, n).output() == n * (n - 1)


def test_a_hand_off_to_an_executor_that_dies_is_run_again(run, tmp_path: Path):
    marker = tmp_path / "killed-once"

    @application()
    @function(retries=Retries(max_retries=1, initial_delay=0.01))
    def hand_off_dies_once(x: int) -> int:
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)  # the executor holding the claim
        return x + 1

    request = run(hand_off_dies_once, 41)
    assert request.output() == 42
    attempts = next(c for c in request.calls() if c.kind == "app").attempts
    assert [a.outcome for a in attempts] == ["crashed", "success"]


def test_the_next_local_run_sees_a_changed_environment(
    run, monkeypatch: pytest.MonkeyPatch
):
    @application()
    @function()
    def hand_off_reads_env(name: str) -> str | None:
        return os.environ.get(name)

    monkeypatch.setenv("CAIRN_HAND_OFF_TEST", "first")
    assert run(hand_off_reads_env, "CAIRN_HAND_OFF_TEST").output() == "first"
    monkeypatch.setenv("CAIRN_HAND_OFF_TEST", "second")  # executors forked anew
    assert run(hand_off_reads_env, "CAIRN_HAND_OFF_TEST").output() == "second"


@pytest.mark.timeout(60)
def test_the_caller_gets_the_record_read_in_the_commit_that_ended_it(
    run, store_url: str, monkeypatch: pytest.MonkeyPatch
):
    @application()
    @function()
    def hand_off_echo(x: int) -> int:
        return x

    assert run(hand_off_echo, 0).output() == 0  # the engine and executors started
    engine = worker.local_engine(store_url)
    read = engine.store.get_request

    def never_ended(request_id: str) -> RequestRecord | None:
        record = read(request_id)
        if record is None:
            return None
        return dataclasses.replace(record, status=RequestStatus.RUNNING)

    # The engine's own reads never see it end: only the executor's record can.
    monkeypatch.setattr(engine.store, "get_request", never_ended)
    request = run(hand_off_echo, 7)
    assert request.output() == 7


def test_a_replay_does_not_end_on_an_earlier_runs_record(run, store_url, effects):
    @function()
    def replayed_step(i: int) -> int:
        effects.record(f"step {i}")
        return i

    @application()
    @function()
    def replayed_app() -> int:
        return replayed_step(1)

    request = run(replayed_app)
    engine = worker.local_engine(store_url)
    first_run = engine.store.get_request(request.id)
    assert first_run is not None and first_run.status is RequestStatus.SUCCEEDED
    # The record of the first run still in the pipe, as when the engine read the
    # end itself before the executor's record came.
    assert engine.wake.ended.send(first_run)
    step = next(c for c in request.calls() if c.function.endswith("replayed_step"))
    effects.clear()
    request.replay(from_call=step.id)
    assert request.output() == 1
    assert effects.lines() == ["step 1"]  # the replay ran, it did not end at once
