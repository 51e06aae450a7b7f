"""Deadlines an executor publishes in shared memory for its supervisor.

No message per call: the executor writes a slot when a call starts, moves its
deadline on progress, parks it at +inf while the call waits on children, and
clears it when the call ends. The supervisor scans the slots every few ms and
kills the process when a deadline has passed, even if the call is stuck in C.
"""

from __future__ import annotations

import math
import mmap
import struct
import time

from cairn.store import CallKey

SLOTS = 256
_HEADER_BYTES = 64
_SLOT_BYTES = 512
_KEY_BYTES = _SLOT_BYTES - 24
_FREE = 0.0
# deadline, started, timeout_s (8-byte aligned doubles), then the call's key, so
# that the supervisor can record a timeout or crash of a call never written yet.
_SLOT = struct.Struct(f"<ddd{_KEY_BYTES}s")
_SEP = "\x1f"
_DOUBLE = struct.Struct("<d")
_TIMES = struct.Struct("<dd")  # started, timeout_s


class DeadlineBoard:
    """One executor's slots, in an anonymous shared mapping inherited across fork."""

    def __init__(self) -> None:
        self._map = mmap.mmap(-1, _HEADER_BYTES + SLOTS * _SLOT_BYTES)
        self._free = list(range(SLOTS - 1, -1, -1))
        self._used = 0

    # -- executor side -----------------------------------------------------------------
    def acquire(self, key: CallKey, timeout_s: float) -> int:
        """Take a slot for a call that starts now; -1 when every slot is taken."""
        if not self._free:
            return -1
        slot = self._free.pop()
        if slot >= self._used:
            # The supervisor scans only the slots ever used (lowest first).
            self._used = slot + 1
            _DOUBLE.pack_into(self._map, 16, float(self._used))
        now = time.monotonic()
        at = self._at(slot)
        encoded = encode_key(key)
        # The key goes in first, the deadline last: a reader that sees the deadline
        # also sees whose it is.
        self._map[at + 24 : at + 24 + len(encoded)] = encoded
        _TIMES.pack_into(self._map, at + 8, now, timeout_s)
        _DOUBLE.pack_into(self._map, at, now + timeout_s)
        return slot

    def extend(self, slot: int, timeout_s: float) -> None:
        """Push a slot's deadline to ``now + timeout_s``."""
        if slot >= 0:
            _DOUBLE.pack_into(self._map, self._at(slot), time.monotonic() + timeout_s)

    def suspend(self, slot: int) -> None:
        """Stop a slot's clock: its call waits on children, who have their own."""
        if slot >= 0:
            _DOUBLE.pack_into(self._map, self._at(slot), math.inf)

    def release(self, slot: int) -> None:
        """Free a slot when its call ends."""
        if slot >= 0:
            _DOUBLE.pack_into(self._map, self._at(slot), _FREE)
            self._free.append(slot)
            # Reuse the lowest slots first, so the scanned range stays small.
            if len(self._free) > 1 and self._free[-2] < slot:
                self._free.sort(reverse=True)

    def set_waiting(self, waiting: bool) -> None:
        """Tell the supervisor this process only waits (so it may start another)."""
        _DOUBLE.pack_into(self._map, 0, time.monotonic() if waiting else 0.0)

    def set_busy(self, busy: bool) -> None:
        """Tell the supervisor whether this process holds any work."""
        _DOUBLE.pack_into(self._map, 8, time.monotonic() if busy else 0.0)

    # -- supervisor side -----------------------------------------------------------------
    def expired(self, now: float) -> list[tuple[CallKey, float]]:
        """``(key, timeout_s)`` of every slot whose deadline has passed."""
        found = []
        for slot in range(self._slots_used()):
            deadline = _DOUBLE.unpack_from(self._map, self._at(slot))[0]
            if deadline == _FREE or deadline >= now:
                continue
            _deadline, _started, timeout_s, raw = _SLOT.unpack_from(
                self._map, self._at(slot)
            )
            # Read again: a slot freed or extended meanwhile is no timeout.
            if _DOUBLE.unpack_from(self._map, self._at(slot))[0] == deadline:
                found.append((decode_key(raw), timeout_s))
        return found

    def executing(self) -> list[CallKey]:
        """Keys of calls whose code is running now (not waiting on children)."""
        found = []
        for slot in range(self._slots_used()):
            deadline = _DOUBLE.unpack_from(self._map, self._at(slot))[0]
            if deadline != _FREE and not math.isinf(deadline):
                raw = _SLOT.unpack_from(self._map, self._at(slot))[3]
                found.append(decode_key(raw))
        return found

    def occupied(self) -> list[tuple[CallKey, float]]:
        """``(key, started)`` of every call in the process, running or waiting on
        children (``started``: when its attempt began, on the monotonic clock)."""
        found = []
        for slot in range(self._slots_used()):
            deadline, started, _timeout_s, raw = _SLOT.unpack_from(
                self._map, self._at(slot)
            )
            if deadline != _FREE:
                found.append((decode_key(raw), started))
        return found

    def _slots_used(self) -> int:
        return int(_DOUBLE.unpack_from(self._map, 16)[0])

    def waiting_since(self) -> float:
        """Monotonic time since which the process only waits, or 0."""
        return float(_DOUBLE.unpack_from(self._map, 0)[0])

    def busy_since(self) -> float:
        """Monotonic time since which the process holds work, or 0."""
        return float(_DOUBLE.unpack_from(self._map, 8)[0])

    def close(self) -> None:
        """Unmap."""
        self._map.close()

    @staticmethod
    def _at(slot: int) -> int:
        return _HEADER_BYTES + slot * _SLOT_BYTES


def encode_key(key: CallKey) -> bytes:
    """A call key for the key field, NUL-terminated (the function name is cut if it
    is huge): only its own bytes are written, not the whole field."""
    fields = [
        key.id,
        key.request_id,
        key.parent_id or "",
        str(key.seq),
        key.kind,
        key.group_id or "",
        "1" if key.dispatched else "0",
        key.function,
    ]
    return _SEP.join(fields).encode()[: _KEY_BYTES - 1] + b"\0"


def decode_key(raw: bytes) -> CallKey:
    """The key ``encode_key`` wrote."""
    # What follows the NUL is left over from a longer key an earlier call wrote.
    parts = raw.partition(b"\0")[0].decode(errors="replace").split(_SEP)
    call_id, request_id, parent_id, seq, kind, group_id, dispatched, function = parts
    return CallKey(
        id=call_id,
        request_id=request_id,
        parent_id=parent_id or None,
        seq=int(seq),
        function=function,
        kind=kind,
        group_id=group_id or None,
        dispatched=dispatched == "1",
    )
