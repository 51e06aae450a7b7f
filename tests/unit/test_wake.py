"""The pipe that carries ended requests' records from executors to the engine:
whole records or none, never a blocked executor, and only awaited ones kept."""

from __future__ import annotations

import select

from cairn.store import RequestRecord
from cairn.types import RequestStatus
from cairn.worker._wake import EndedRequests


def _record(request_id: str, output: bytes = b'"done"') -> RequestRecord:
    return RequestRecord(
        id=request_id,
        application="app",
        code_ref=None,
        status=RequestStatus.SUCCEEDED,
        failure_reason=None,
        error=None,
        input=b"{}",
        output=output,
        headers={},
        run=1,
        strict_replay=False,
        progress=None,
        created_at_ms=1.0,
        started_at_ms=2.0,
        finished_at_ms=3.0,
        attempts_failed=False,
    )


def test_an_awaited_record_is_kept_for_its_waiter_and_others_are_dropped():
    ended = EndedRequests()
    try:
        with ended.awaiting("a"), ended.awaiting("b"):
            ended.send_all([_record("a"), _record("nobody"), _record("b")])
            assert ended.reported("b") == _record("b")
            assert ended.reported("a") == _record("a")  # taken with b's
        with ended.awaiting("nobody"):
            assert ended.reported("nobody") is None  # dropped: nobody waited then
        assert ended.reported("a") is None  # its waiter left
    finally:
        ended.close()


def test_a_record_larger_than_one_atomic_write_is_not_sent():
    ended = EndedRequests()
    try:
        with ended.awaiting("big"):
            assert not ended.send(_record("big", output=b"x" * select.PIPE_BUF))
            assert ended.reported("big") is None  # the engine reads the store
    finally:
        ended.close()


def test_a_full_pipe_refuses_records_without_blocking_the_executor():
    ended = EndedRequests()
    try:
        sent = 0
        while ended.send(_record(f"r{sent}")):
            sent += 1
        assert sent > 10  # the pipe's buffer, then no more, and no wait
        with ended.awaiting(f"r{sent - 1}"):
            assert ended.reported(f"r{sent - 1}") == _record(f"r{sent - 1}")
        assert ended.send(_record("again"))  # drained: room again
    finally:
        ended.close()
