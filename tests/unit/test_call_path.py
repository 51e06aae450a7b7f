"""The per-call shortcuts of the inline path give what the general path gives:
the deadline board's keys, the flusher's running calls, pickles of plain values,
and the copies a caller and an attempt get."""

from __future__ import annotations

import io
import math
import threading
from typing import Any

import pytest

from cairn import _serialization
from cairn._execution import calls, driver, futures, storage
from cairn.store import CallKey, RunningCall
from cairn.worker._deadlines import DeadlineBoard
from tests.unit.core_support import core, spec


def _call_key(call_id: str, function: str) -> CallKey:
    return CallKey(
        id=call_id,
        request_id="req",
        parent_id="parent",
        seq=7,
        function=function,
        kind="call",
        group_id=None,
        dispatched=False,
    )


def test_a_slot_reused_by_a_shorter_key_reads_back_that_key():
    board = DeadlineBoard()
    try:
        long_key = _call_key("a" * 64, "f" * 300)
        slot = board.acquire(long_key, 30.0)
        assert board.executing() == [long_key]
        board.release(slot)
        short_key = _call_key("b", "g")
        assert board.acquire(short_key, 30.0) == slot
        assert board.executing() == [short_key]
        assert [key for key, _ in board.occupied()] == [short_key]
    finally:
        board.close()


def test_a_key_longer_than_its_field_is_cut_in_the_function_name():
    board = DeadlineBoard()
    try:
        key = _call_key("c" * 64, "h" * 1000)
        board.acquire(key, 0.0)
        ((read, timeout_s),) = board.expired(math.inf)
        assert read.id == key.id and read.seq == 7 and timeout_s == 0.0
        assert set(read.function) == {"h"} and len(read.function) < 1000
    finally:
        board.close()


class _Marks:
    def __init__(self) -> None:
        self.marked: list[RunningCall] = []
        self.done = threading.Event()

    def mark_running(self, running: list[RunningCall]) -> None:
        self.marked.extend(running)
        self.done.set()


def test_the_flusher_marks_a_long_call_running_with_its_fields(monkeypatch):
    monkeypatch.setattr(storage, "VISIBLE_AFTER_S", 0.02)
    marks = _Marks()
    flusher = storage.Flusher(marks)  # type: ignore[arg-type]
    key = _call_key("d", "long_call")
    flusher.track(1, key, 3, "worker-1", 2, 1234.5)
    flusher.track(2, _call_key("e", "short_call"), 3, "worker-1", 2, 1234.5)
    flusher.untrack(2)
    flusher.start()
    try:
        assert marks.done.wait(5.0)
    finally:
        flusher.stop()
        flusher.join()
    assert marks.marked == [
        RunningCall(
            key=key, run=3, worker_id="worker-1", executor=2, started_at_ms=1234.5
        )
    ]


_ATOMS: list[Any] = [
    0,
    -(2**70),
    1.5,
    -0.0,
    math.inf,
    "",
    "é😀" * 50,
    b"\x00" * 3,
    True,
    None,
]


@pytest.mark.parametrize("value", _ATOMS, ids=repr)
def test_plain_values_pickle_to_the_bytes_of_the_general_pickler(value):
    def general(obj: Any) -> bytes:
        buffer = io.BytesIO()
        _serialization._FastPickler(
            buffer, protocol=_serialization.PICKLE_PROTOCOL
        ).dump(obj)
        return buffer.getvalue()

    assert _serialization.dumps(value, "v") == general(value)
    assert _serialization.dumps_arguments("f", (value, value), {"k": value}) == (
        general(((value, value), {"k": value}))
    )


def test_plain_arguments_are_passed_on_without_copies():
    args, kwargs = (1, "x", [2]), {"k": {"a": 1}}
    assert calls._resolve_arguments(args, kwargs) == (args, kwargs, [])
    assert calls._resolve_arguments(args, kwargs)[1] is kwargs
    value = object()
    assert futures.as_input(value) is value


def test_mutable_arguments_and_outputs_are_still_copies(tmp_path):
    seen: list[Any] = []

    def keep(items: list[int], n: int) -> list[int]:
        seen.append(items)
        items.append(n)
        return items

    keep_spec = spec("core_keep", keep)
    given = [1]
    with core(tmp_path) as c, c.run() as frame:
        key = frame.child_key(["FunctionCall", "core_keep"], [], "core_keep", "call")
        output = driver.run_inline(frame, key, keep_spec, (given, 2), {})
        del c
    assert given == [1] and seen[0] is not given  # the call got a copy
    assert output == [1, 2] and output is not seen[0]  # and so did the caller


def test_atom_arguments_and_outputs_are_the_values_themselves(tmp_path):
    def same(text: str, n: int = 0) -> str:
        return text * (n + 1)

    same_spec = spec("core_same", same)
    with core(tmp_path) as c, c.run() as frame:
        key = frame.child_key(["FunctionCall", "core_same"], [], "core_same", "call")
        assert driver.run_inline(frame, key, same_spec, ("ab",), {"n": 1}) == "abab"
        (row,) = c.store.list_children(c.request_id, frame.key.id)
    assert row.function == "core_same"
